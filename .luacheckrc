std = "lua54"
max_line_length = 120
-- specs hold PyTorch's reference strings and numbers, kept on one line each
files["spec/**/*.lua"] = { std = "+busted", max_line_length = false }
