std = "lua54"
files["spec/**/*.lua"] = { std = "+busted" }
max_line_length = 120
