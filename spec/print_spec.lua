-- tostring(t): PyTorch 1.13's printing (torch/_tensor_str.py), compared character for character.
-- The expected strings come from real PyTorch: the cases between the GENERATED markers are the
-- output of `/usr/bin/python3 spec/fixtures/gen_print.py`, each with the Python expression behind
-- it, and PyTorch's `dtype=torch.float64` / `requires_grad=True` written the moongrad way.
local mg = require "moongrad"

-- {f(0), ..., f(n-1)}, as seq() in gen_print.py
local function seq(n, f)
  local t = {}
  for i = 0, n - 1 do t[i + 1] = f(i) end
  return t
end

-- nested tables of the given sizes holding f(flat 0-based index), as nest() in gen_print.py
local function nest(sizes, f, depth, base)
  depth, base = depth or 1, base or 0
  if depth > #sizes then return f(base) end
  local step = 1
  for d = depth + 1, #sizes do step = step * sizes[d] end
  local t = {}
  for i = 0, sizes[depth] - 1 do t[i + 1] = nest(sizes, f, depth + 1, base + i * step) end
  return t
end

-- requires_grad = true in mg.tensor's options arrives with autograd (#4): until then these are pending.
local it_grad = mg.tensor({1}, {requires_grad = true}).requires_grad and it or pending

describe("print", function()
  -- BEGIN GENERATED (spec/fixtures/gen_print.py)
    describe("floats", function()
      it("pads every element to one width (the book's example)", function()
        -- str(torch.tensor([5.3671, -17.3012]))
        assert.equal("tensor([  5.3671, -17.3012])",
          tostring(mg.tensor{5.3671, -17.3012}))
      end)
      it("prints 4 decimals", function()
        -- str(torch.tensor([1.5, 2.25, -3.125, 0.1]))
        assert.equal("tensor([ 1.5000,  2.2500, -3.1250,  0.1000])",
          tostring(mg.tensor{1.5, 2.25, -3.125, 0.1}))
      end)
      it("rounds the float32 value, not the decimal literal", function()
        -- str(torch.tensor([1.00005, 2.00015]))
        assert.equal("tensor([1.0000, 2.0001])",
          tostring(mg.tensor{1.00005, 2.00015}))
      end)
      it("rounds the float64 value when the dtype is float64", function()
        -- str(torch.tensor([1.00005, 2.00015], dtype=torch.float64))
        assert.equal("tensor([1.0001, 2.0002], dtype=float64)",
          tostring(mg.tensor({1.00005, 2.00015}, {dtype = 'float64'})))
      end)
      it("prints integral values as 1.", function()
        -- str(torch.tensor([1., 2., 3.]))
        assert.equal("tensor([1., 2., 3.])",
          tostring(mg.tensor{1, 2, 3}))
      end)
      it("prints integral negatives and zeros as 1.", function()
        -- str(torch.tensor([0., -1., 20., -300.]))
        assert.equal("tensor([   0.,   -1.,   20., -300.])",
          tostring(mg.tensor{0, -1, 20, -300}))
      end)
      it("prints all zeros as 0.", function()
        -- str(torch.tensor([0., 0., 0.]))
        assert.equal("tensor([0., 0., 0.])",
          tostring(mg.tensor{0, 0, 0}))
      end)
      it("keeps the sign of -0", function()
        -- str(torch.tensor([-0.0, 1.5]))
        assert.equal("tensor([-0.0000, 1.5000])",
          tostring(mg.tensor{-0.0, 1.5}))
      end)
      it("keeps the sign of an integral -0", function()
        -- str(torch.tensor([-0.0, 2.]))
        assert.equal("tensor([-0., 2.])",
          tostring(mg.tensor{-0.0, 2}))
      end)
    end)

    describe("scientific", function()
      it("switches when max / min > 1000", function()
        -- str(torch.tensor([0.001, 10.5]))
        assert.equal("tensor([1.0000e-03, 1.0500e+01])",
          tostring(mg.tensor{0.001, 10.5}))
      end)
      it("switches when min < 1e-4", function()
        -- str(torch.tensor([0.00005, 0.00007]))
        assert.equal("tensor([5.0000e-05, 7.0000e-05])",
          tostring(mg.tensor{0.00005, 0.00007}))
      end)
      it("switches when max > 1e8", function()
        -- str(torch.tensor([123456789.0, 200000000.5]))
        assert.equal("tensor([1.2346e+08, 2.0000e+08])",
          tostring(mg.tensor{123456789.0, 200000000.5}))
      end)
      it("switches for integral values with a ratio over 1000", function()
        -- str(torch.tensor([1., 10000.]))
        assert.equal("tensor([1.0000e+00, 1.0000e+04])",
          tostring(mg.tensor{1, 10000}))
      end)
      it("switches for integral values over 1e8", function()
        -- str(torch.tensor([1e9, -2.]))
        assert.equal("tensor([ 1.0000e+09, -2.0000e+00])",
          tostring(mg.tensor{1e9, -2}))
      end)
      it("stays fixed for integral values at a ratio of exactly 1000", function()
        -- str(torch.tensor([1., 1000.]))
        assert.equal("tensor([   1., 1000.])",
          tostring(mg.tensor{1, 1000}))
      end)
      it("ignores zeros in the range and pads them", function()
        -- str(torch.tensor([0., 1e-5, -3.]))
        assert.equal("tensor([ 0.0000e+00,  1.0000e-05, -3.0000e+00])",
          tostring(mg.tensor{0, 1e-5, -3}))
      end)
      it("prints float64 exponents past 99", function()
        -- str(torch.tensor([1e-300, 1., 1e200], dtype=torch.float64))
        assert.equal("tensor([1.0000e-300,  1.0000e+00, 1.0000e+200], dtype=float64)",
          tostring(mg.tensor({1e-300, 1, 1e200}, {dtype = 'float64'})))
      end)
    end)

    describe("nan and inf", function()
      it("pads nan and inf to the fixed width", function()
        -- str(torch.tensor([nan, inf, -inf, 1.5]))
        assert.equal("tensor([   nan,    inf,   -inf, 1.5000])",
          tostring(mg.tensor{0/0, 1/0, -1/0, 1.5}))
      end)
      it("adds no dot to nan and inf among integral values", function()
        -- str(torch.tensor([nan, 1., -inf, 20.]))
        assert.equal("tensor([nan,  1., -inf, 20.])",
          tostring(mg.tensor{0/0, 1, -1/0, 20}))
      end)
      it("does not widen for nan and inf alone", function()
        -- str(torch.tensor([nan, inf, 0.]))
        assert.equal("tensor([nan, inf, 0.])",
          tostring(mg.tensor{0/0, 1/0, 0}))
      end)
      it("prints nan without its sign bit", function()
        -- str(torch.tensor([nan, -nan, 1.25]))
        assert.equal("tensor([   nan,    nan, 1.2500])",
          tostring(mg.tensor{-(0/0), 0/0, 1.25}))
      end)
      it("pads nan in scientific notation", function()
        -- str(torch.tensor([nan, 1e-6, inf]))
        assert.equal("tensor([       nan, 1.0000e-06,        inf])",
          tostring(mg.tensor{0/0, 1e-6, 1/0}))
      end)
    end)

    describe("int64", function()
      it("prints integers padded to one width", function()
        -- str(torch.tensor([1, -100, 12345]))
        assert.equal("tensor([    1,  -100, 12345])",
          tostring(mg.tensor({1, -100, 12345}, {dtype = 'int64'})))
      end)
      it("prints the extremes", function()
        -- str(torch.tensor([-2**63, 2**63 - 1, 0]))
        assert.equal("tensor([-9223372036854775808,  9223372036854775807,                    0])",
          tostring(mg.tensor({math.mininteger, math.maxinteger, 0}, {dtype = 'int64'})))
      end)
      it("prints a 0-d integer", function()
        -- str(torch.tensor(3))
        assert.equal("tensor(3)",
          tostring(mg.tensor(3, {dtype = 'int64'})))
      end)
      it("keeps int64 elements exact past 2^53", function()
        -- str(torch.tensor([9007199254740993, -5]))
        assert.equal("tensor([9007199254740993,               -5])",
          tostring(mg.tensor({9007199254740993, -5}, {dtype = 'int64'})))
      end)
      it("prints a 2-D integer tensor", function()
        -- str(torch.tensor([[1, 22], [-3, 4]]))
        assert.equal([=[
tensor([[ 1, 22],
        [-3,  4]])]=],
          tostring(mg.tensor({{1, 22}, {-3, 4}}, {dtype = 'int64'})))
      end)
    end)

    describe("bool", function()
      it("pads True to the width of False", function()
        -- str(torch.tensor([True, False]))
        assert.equal("tensor([ True, False])",
          tostring(mg.tensor{true, false}))
      end)
      it("prints all True without padding", function()
        -- str(torch.tensor([True, True]))
        assert.equal("tensor([True, True])",
          tostring(mg.tensor{true, true}))
      end)
      it("prints a 0-d bool", function()
        -- str(torch.tensor(False))
        assert.equal("tensor(False)",
          tostring(mg.tensor(false)))
      end)
      it("prints a 2-D bool tensor", function()
        -- str(torch.tensor([[True, False], [False, True]]))
        assert.equal([=[
tensor([[ True, False],
        [False,  True]])]=],
          tostring(mg.tensor{{true, false}, {false, true}}))
      end)
    end)

    describe("0-d", function()
      it("prints a float", function()
        -- str(torch.tensor(3.5))
        assert.equal("tensor(3.5000)",
          tostring(mg.tensor(3.5)))
      end)
      it("prints an integral float", function()
        -- str(torch.tensor(3.))
        assert.equal("tensor(3.)",
          tostring(mg.tensor(3)))
      end)
      it("prints a small float in scientific notation", function()
        -- str(torch.tensor(0.00001234))
        assert.equal("tensor(1.2340e-05)",
          tostring(mg.tensor(0.00001234)))
      end)
      it("prints nan", function()
        -- str(torch.tensor(nan))
        assert.equal("tensor(nan)",
          tostring(mg.tensor(0/0)))
      end)
      it("prints a float64 with its dtype", function()
        -- str(torch.tensor(-2.5, dtype=torch.float64))
        assert.equal("tensor(-2.5000, dtype=float64)",
          tostring(mg.tensor(-2.5, {dtype = 'float64'})))
      end)
    end)

    describe("empty", function()
      it("prints a 1-D empty tensor", function()
        -- str(torch.tensor([]))
        assert.equal("tensor([])",
          tostring(mg.tensor{}))
      end)
      it("prints the size of an empty 2-D tensor", function()
        -- str(torch.tensor([]).view(0, 3))
        assert.equal("tensor([], size=(0, 3))",
          tostring(mg.tensor{}:view(0, 3)))
      end)
      it("prints the size of an empty 3-D tensor", function()
        -- str(torch.tensor([]).view(2, 0, 3))
        assert.equal("tensor([], size=(2, 0, 3))",
          tostring(mg.tensor{}:view(2, 0, 3)))
      end)
      it("prints the dtype of an empty int64 tensor", function()
        -- str(torch.tensor([], dtype=torch.int64))
        assert.equal("tensor([], dtype=int64)",
          tostring(mg.tensor({}, {dtype = 'int64'})))
      end)
      it("prints the dtype of an empty bool tensor", function()
        -- str(torch.tensor([], dtype=torch.bool))
        assert.equal("tensor([], dtype=bool)",
          tostring(mg.tensor({}, {dtype = 'bool'})))
      end)
      it("prints size then dtype", function()
        -- str(torch.tensor([], dtype=torch.float64).view(0, 3))
        assert.equal("tensor([], size=(0, 3), dtype=float64)",
          tostring(mg.tensor({}, {dtype = 'float64'}):view(0, 3)))
      end)
    end)

    describe("dtype suffix", function()
      it("names float64", function()
        -- str(torch.tensor([1.5, 2.], dtype=torch.float64))
        assert.equal("tensor([1.5000, 2.0000], dtype=float64)",
          tostring(mg.tensor({1.5, 2}, {dtype = 'float64'})))
      end)
      it("names float64 on integral values", function()
        -- str(torch.tensor([1., 2.], dtype=torch.float64))
        assert.equal("tensor([1., 2.], dtype=float64)",
          tostring(mg.tensor({1, 2}, {dtype = 'float64'})))
      end)
      it("moves the suffix to its own line past 80 columns", function()
        -- str(torch.tensor(seq(7, lambda i: 123.4567), dtype=torch.float64))
        assert.equal([=[
tensor([123.4567, 123.4567, 123.4567, 123.4567, 123.4567, 123.4567, 123.4567],
       dtype=float64)]=],
          tostring(mg.tensor(seq(7, function() return 123.4567 end), {dtype = 'float64'})))
      end)
      it("keeps the suffix on the line when it fits", function()
        -- str(torch.tensor(seq(4, lambda i: 123.4567), dtype=torch.float64))
        assert.equal("tensor([123.4567, 123.4567, 123.4567, 123.4567], dtype=float64)",
          tostring(mg.tensor(seq(4, function() return 123.4567 end), {dtype = 'float64'})))
      end)
      it("indents the suffix after a wrapped row", function()
        -- str(torch.tensor(seq(16, lambda i: i * 1.25), dtype=torch.float64))
        assert.equal([=[
tensor([ 0.0000,  1.2500,  2.5000,  3.7500,  5.0000,  6.2500,  7.5000,  8.7500,
        10.0000, 11.2500, 12.5000, 13.7500, 15.0000, 16.2500, 17.5000, 18.7500],
       dtype=float64)]=],
          tostring(mg.tensor(seq(16, function(i) return i * 1.25 end), {dtype = 'float64'})))
      end)
    end)

    describe("2-D", function()
      it("aligns rows", function()
        -- str(torch.tensor([[1.5, -2.], [3., 400.25]]))
        assert.equal([=[
tensor([[  1.5000,  -2.0000],
        [  3.0000, 400.2500]])]=],
          tostring(mg.tensor{{1.5, -2}, {3, 400.25}}))
      end)
      it("prints integral rows", function()
        -- str(torch.tensor([[1., 2., 3.], [4., 5., 6.]]))
        assert.equal([=[
tensor([[1., 2., 3.],
        [4., 5., 6.]])]=],
          tostring(mg.tensor{{1, 2, 3}, {4, 5, 6}}))
      end)
      it("prints a single column", function()
        -- str(torch.tensor([[1.5], [2.5], [-3.5]]))
        assert.equal([=[
tensor([[ 1.5000],
        [ 2.5000],
        [-3.5000]])]=],
          tostring(mg.tensor{{1.5}, {2.5}, {-3.5}}))
      end)
      it("prints in scientific notation", function()
        -- str(torch.tensor([[1e-5, 1.], [2., 3e6]]))
        assert.equal([=[
tensor([[1.0000e-05, 1.0000e+00],
        [2.0000e+00, 3.0000e+06]])]=],
          tostring(mg.tensor{{1e-5, 1}, {2, 3e6}}))
      end)
      it("wraps long rows with the deeper indent", function()
        -- str(torch.tensor(nest([2, 12], lambda i: i * 1.5 - 7)))
        assert.equal([=[
tensor([[-7.0000, -5.5000, -4.0000, -2.5000, -1.0000,  0.5000,  2.0000,  3.5000,
          5.0000,  6.5000,  8.0000,  9.5000],
        [11.0000, 12.5000, 14.0000, 15.5000, 17.0000, 18.5000, 20.0000, 21.5000,
         23.0000, 24.5000, 26.0000, 27.5000]])]=],
          tostring(mg.tensor(nest({2, 12}, function(i) return i * 1.5 - 7 end))))
      end)
    end)

    describe("n-D", function()
      it("separates 3-D blocks with a blank line", function()
        -- str(torch.tensor(nest([2, 2, 3], lambda i: i * 0.5)))
        assert.equal([=[
tensor([[[0.0000, 0.5000, 1.0000],
         [1.5000, 2.0000, 2.5000]],

        [[3.0000, 3.5000, 4.0000],
         [4.5000, 5.0000, 5.5000]]])]=],
          tostring(mg.tensor(nest({2, 2, 3}, function(i) return i * 0.5 end))))
      end)
      it("separates 4-D blocks with two blank lines", function()
        -- str(torch.tensor(nest([2, 2, 1, 2], lambda i: i)))
        assert.equal([=[
tensor([[[[0, 1]],

         [[2, 3]]],


        [[[4, 5]],

         [[6, 7]]]])]=],
          tostring(mg.tensor(nest({2, 2, 1, 2}, function(i) return i end), {dtype = 'int64'})))
      end)
      it("prints size-1 dims", function()
        -- str(torch.tensor([[[2.5]]]))
        assert.equal("tensor([[[2.5000]]])",
          tostring(mg.tensor{{{2.5}}}))
      end)
    end)

    describe("wrapping", function()
      it("wraps a long float row at 80 columns", function()
        -- str(torch.tensor(seq(30, lambda i: i * 1.5)))
        assert.equal([=[
tensor([ 0.0000,  1.5000,  3.0000,  4.5000,  6.0000,  7.5000,  9.0000, 10.5000,
        12.0000, 13.5000, 15.0000, 16.5000, 18.0000, 19.5000, 21.0000, 22.5000,
        24.0000, 25.5000, 27.0000, 28.5000, 30.0000, 31.5000, 33.0000, 34.5000,
        36.0000, 37.5000, 39.0000, 40.5000, 42.0000, 43.5000])]=],
          tostring(mg.tensor(seq(30, function(i) return i * 1.5 end))))
      end)
      it("wraps a long int64 row at 80 columns", function()
        -- str(torch.tensor(seq(40, lambda i: i * 7 - 50)))
        assert.equal([=[
tensor([-50, -43, -36, -29, -22, -15,  -8,  -1,   6,  13,  20,  27,  34,  41,
         48,  55,  62,  69,  76,  83,  90,  97, 104, 111, 118, 125, 132, 139,
        146, 153, 160, 167, 174, 181, 188, 195, 202, 209, 216, 223])]=],
          tostring(mg.tensor(seq(40, function(i) return i * 7 - 50 end), {dtype = 'int64'})))
      end)
      it("wraps a bool row", function()
        -- str(torch.tensor(seq(20, lambda i: i % 3 == 0)))
        assert.equal([=[
tensor([ True, False, False,  True, False, False,  True, False, False,  True,
        False, False,  True, False, False,  True, False, False,  True, False])]=],
          tostring(mg.tensor(seq(20, function(i) return i % 3 == 0 end))))
      end)
      it("wraps scientific notation", function()
        -- str(torch.tensor(seq(12, lambda i: 10.0 ** (i - 6))))
        assert.equal([=[
tensor([1.0000e-06, 1.0000e-05, 1.0000e-04, 1.0000e-03, 1.0000e-02, 1.0000e-01,
        1.0000e+00, 1.0000e+01, 1.0000e+02, 1.0000e+03, 1.0000e+04, 1.0000e+05])]=],
          tostring(mg.tensor(seq(12, function(i) return 10.0 ^ (i - 6) end))))
      end)
    end)

    describe("summarizing", function()
      it("keeps 1000 elements whole", function()
        -- str(torch.tensor(seq(1000, lambda i: i)))
        assert.equal([=[
tensor([  0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,
         14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,
         28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,
         42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  52,  53,  54,  55,
         56,  57,  58,  59,  60,  61,  62,  63,  64,  65,  66,  67,  68,  69,
         70,  71,  72,  73,  74,  75,  76,  77,  78,  79,  80,  81,  82,  83,
         84,  85,  86,  87,  88,  89,  90,  91,  92,  93,  94,  95,  96,  97,
         98,  99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
        112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
        126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139,
        140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153,
        154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167,
        168, 169, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181,
        182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195,
        196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209,
        210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223,
        224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237,
        238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251,
        252, 253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265,
        266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278, 279,
        280, 281, 282, 283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293,
        294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305, 306, 307,
        308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321,
        322, 323, 324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335,
        336, 337, 338, 339, 340, 341, 342, 343, 344, 345, 346, 347, 348, 349,
        350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363,
        364, 365, 366, 367, 368, 369, 370, 371, 372, 373, 374, 375, 376, 377,
        378, 379, 380, 381, 382, 383, 384, 385, 386, 387, 388, 389, 390, 391,
        392, 393, 394, 395, 396, 397, 398, 399, 400, 401, 402, 403, 404, 405,
        406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 419,
        420, 421, 422, 423, 424, 425, 426, 427, 428, 429, 430, 431, 432, 433,
        434, 435, 436, 437, 438, 439, 440, 441, 442, 443, 444, 445, 446, 447,
        448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461,
        462, 463, 464, 465, 466, 467, 468, 469, 470, 471, 472, 473, 474, 475,
        476, 477, 478, 479, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489,
        490, 491, 492, 493, 494, 495, 496, 497, 498, 499, 500, 501, 502, 503,
        504, 505, 506, 507, 508, 509, 510, 511, 512, 513, 514, 515, 516, 517,
        518, 519, 520, 521, 522, 523, 524, 525, 526, 527, 528, 529, 530, 531,
        532, 533, 534, 535, 536, 537, 538, 539, 540, 541, 542, 543, 544, 545,
        546, 547, 548, 549, 550, 551, 552, 553, 554, 555, 556, 557, 558, 559,
        560, 561, 562, 563, 564, 565, 566, 567, 568, 569, 570, 571, 572, 573,
        574, 575, 576, 577, 578, 579, 580, 581, 582, 583, 584, 585, 586, 587,
        588, 589, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 600, 601,
        602, 603, 604, 605, 606, 607, 608, 609, 610, 611, 612, 613, 614, 615,
        616, 617, 618, 619, 620, 621, 622, 623, 624, 625, 626, 627, 628, 629,
        630, 631, 632, 633, 634, 635, 636, 637, 638, 639, 640, 641, 642, 643,
        644, 645, 646, 647, 648, 649, 650, 651, 652, 653, 654, 655, 656, 657,
        658, 659, 660, 661, 662, 663, 664, 665, 666, 667, 668, 669, 670, 671,
        672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 684, 685,
        686, 687, 688, 689, 690, 691, 692, 693, 694, 695, 696, 697, 698, 699,
        700, 701, 702, 703, 704, 705, 706, 707, 708, 709, 710, 711, 712, 713,
        714, 715, 716, 717, 718, 719, 720, 721, 722, 723, 724, 725, 726, 727,
        728, 729, 730, 731, 732, 733, 734, 735, 736, 737, 738, 739, 740, 741,
        742, 743, 744, 745, 746, 747, 748, 749, 750, 751, 752, 753, 754, 755,
        756, 757, 758, 759, 760, 761, 762, 763, 764, 765, 766, 767, 768, 769,
        770, 771, 772, 773, 774, 775, 776, 777, 778, 779, 780, 781, 782, 783,
        784, 785, 786, 787, 788, 789, 790, 791, 792, 793, 794, 795, 796, 797,
        798, 799, 800, 801, 802, 803, 804, 805, 806, 807, 808, 809, 810, 811,
        812, 813, 814, 815, 816, 817, 818, 819, 820, 821, 822, 823, 824, 825,
        826, 827, 828, 829, 830, 831, 832, 833, 834, 835, 836, 837, 838, 839,
        840, 841, 842, 843, 844, 845, 846, 847, 848, 849, 850, 851, 852, 853,
        854, 855, 856, 857, 858, 859, 860, 861, 862, 863, 864, 865, 866, 867,
        868, 869, 870, 871, 872, 873, 874, 875, 876, 877, 878, 879, 880, 881,
        882, 883, 884, 885, 886, 887, 888, 889, 890, 891, 892, 893, 894, 895,
        896, 897, 898, 899, 900, 901, 902, 903, 904, 905, 906, 907, 908, 909,
        910, 911, 912, 913, 914, 915, 916, 917, 918, 919, 920, 921, 922, 923,
        924, 925, 926, 927, 928, 929, 930, 931, 932, 933, 934, 935, 936, 937,
        938, 939, 940, 941, 942, 943, 944, 945, 946, 947, 948, 949, 950, 951,
        952, 953, 954, 955, 956, 957, 958, 959, 960, 961, 962, 963, 964, 965,
        966, 967, 968, 969, 970, 971, 972, 973, 974, 975, 976, 977, 978, 979,
        980, 981, 982, 983, 984, 985, 986, 987, 988, 989, 990, 991, 992, 993,
        994, 995, 996, 997, 998, 999])]=],
          tostring(mg.tensor(seq(1000, function(i) return i end), {dtype = 'int64'})))
      end)
      it("shows 3 elements each side past 1000", function()
        -- str(torch.tensor(seq(1001, lambda i: float(i))))
        assert.equal("tensor([   0.,    1.,    2.,  ...,  998.,  999., 1000.])",
          tostring(mg.tensor(seq(1001, function(i) return i end))))
      end)
      it("takes the format from the shown elements only", function()
        -- str(torch.tensor(seq(2000, lambda i: 1e-9 if i == 1000 else i * 0.5)))
        assert.equal([=[
tensor([0.0000e+00, 5.0000e-01, 1.0000e+00,  ..., 9.9850e+02, 9.9900e+02,
        9.9950e+02])]=],
          tostring(mg.tensor(seq(2000, function(i) return (i == 1000) and 1e-9 or i * 0.5 end))))
      end)
      it("summarizes a 2-D tensor in both dims", function()
        -- str(torch.tensor(nest([40, 30], lambda i: i * 0.25 - 100)))
        assert.equal([=[
tensor([[-100.0000,  -99.7500,  -99.5000,  ...,  -93.2500,  -93.0000,
          -92.7500],
        [ -92.5000,  -92.2500,  -92.0000,  ...,  -85.7500,  -85.5000,
          -85.2500],
        [ -85.0000,  -84.7500,  -84.5000,  ...,  -78.2500,  -78.0000,
          -77.7500],
        ...,
        [ 177.5000,  177.7500,  178.0000,  ...,  184.2500,  184.5000,
          184.7500],
        [ 185.0000,  185.2500,  185.5000,  ...,  191.7500,  192.0000,
          192.2500],
        [ 192.5000,  192.7500,  193.0000,  ...,  199.2500,  199.5000,
          199.7500]])]=],
          tostring(mg.tensor(nest({40, 30}, function(i) return i * 0.25 - 100 end))))
      end)
      it("summarizes only the dims longer than 6", function()
        -- str(torch.tensor(nest([200, 6], lambda i: i)))
        assert.equal([=[
tensor([[   0,    1,    2,    3,    4,    5],
        [   6,    7,    8,    9,   10,   11],
        [  12,   13,   14,   15,   16,   17],
        ...,
        [1182, 1183, 1184, 1185, 1186, 1187],
        [1188, 1189, 1190, 1191, 1192, 1193],
        [1194, 1195, 1196, 1197, 1198, 1199]])]=],
          tostring(mg.tensor(nest({200, 6}, function(i) return i end), {dtype = 'int64'})))
      end)
      it("summarizes a 3-D tensor", function()
        -- str(torch.tensor(nest([11, 11, 11], lambda i: i)))
        assert.equal([=[
tensor([[[   0,    1,    2,  ...,    8,    9,   10],
         [  11,   12,   13,  ...,   19,   20,   21],
         [  22,   23,   24,  ...,   30,   31,   32],
         ...,
         [  88,   89,   90,  ...,   96,   97,   98],
         [  99,  100,  101,  ...,  107,  108,  109],
         [ 110,  111,  112,  ...,  118,  119,  120]],

        [[ 121,  122,  123,  ...,  129,  130,  131],
         [ 132,  133,  134,  ...,  140,  141,  142],
         [ 143,  144,  145,  ...,  151,  152,  153],
         ...,
         [ 209,  210,  211,  ...,  217,  218,  219],
         [ 220,  221,  222,  ...,  228,  229,  230],
         [ 231,  232,  233,  ...,  239,  240,  241]],

        [[ 242,  243,  244,  ...,  250,  251,  252],
         [ 253,  254,  255,  ...,  261,  262,  263],
         [ 264,  265,  266,  ...,  272,  273,  274],
         ...,
         [ 330,  331,  332,  ...,  338,  339,  340],
         [ 341,  342,  343,  ...,  349,  350,  351],
         [ 352,  353,  354,  ...,  360,  361,  362]],

        ...,

        [[ 968,  969,  970,  ...,  976,  977,  978],
         [ 979,  980,  981,  ...,  987,  988,  989],
         [ 990,  991,  992,  ...,  998,  999, 1000],
         ...,
         [1056, 1057, 1058,  ..., 1064, 1065, 1066],
         [1067, 1068, 1069,  ..., 1075, 1076, 1077],
         [1078, 1079, 1080,  ..., 1086, 1087, 1088]],

        [[1089, 1090, 1091,  ..., 1097, 1098, 1099],
         [1100, 1101, 1102,  ..., 1108, 1109, 1110],
         [1111, 1112, 1113,  ..., 1119, 1120, 1121],
         ...,
         [1177, 1178, 1179,  ..., 1185, 1186, 1187],
         [1188, 1189, 1190,  ..., 1196, 1197, 1198],
         [1199, 1200, 1201,  ..., 1207, 1208, 1209]],

        [[1210, 1211, 1212,  ..., 1218, 1219, 1220],
         [1221, 1222, 1223,  ..., 1229, 1230, 1231],
         [1232, 1233, 1234,  ..., 1240, 1241, 1242],
         ...,
         [1298, 1299, 1300,  ..., 1306, 1307, 1308],
         [1309, 1310, 1311,  ..., 1317, 1318, 1319],
         [1320, 1321, 1322,  ..., 1328, 1329, 1330]]])]=],
          tostring(mg.tensor(nest({11, 11, 11}, function(i) return i end), {dtype = 'int64'})))
      end)
      it("summarizes a bool tensor", function()
        -- str(torch.tensor(seq(1500, lambda i: i % 2 == 1)))
        assert.equal("tensor([False,  True, False,  ...,  True, False,  True])",
          tostring(mg.tensor(seq(1500, function(i) return i % 2 == 1 end))))
      end)
    end)

    describe("views", function()
      it("prints a transposed matrix", function()
        -- str(torch.tensor([[1.5, 2, 3], [4, 5, 6]]).t())
        assert.equal([=[
tensor([[1.5000, 4.0000],
        [2.0000, 5.0000],
        [3.0000, 6.0000]])]=],
          tostring(mg.tensor{{1.5, 2, 3}, {4, 5, 6}}:t()))
      end)
      it("prints an expanded row (stride 0)", function()
        -- str(torch.tensor([1.5, -2, 3]).expand(2, 3))
        assert.equal([=[
tensor([[ 1.5000, -2.0000,  3.0000],
        [ 1.5000, -2.0000,  3.0000]])]=],
          tostring(mg.tensor{1.5, -2, 3}:expand(2, 3)))
      end)
      it("prints a narrowed view", function()
        -- str(torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8.5]]).narrow(1, 1, 2))
        assert.equal([=[
tensor([[2., 3.],
        [6., 7.]])]=],
          tostring(mg.tensor{{1, 2, 3, 4}, {5, 6, 7, 8.5}}:narrow(2, 2, 2)))
      end)
      it("prints a permuted 3-D tensor", function()
        -- str(torch.tensor(nest([2, 3, 4], lambda i: float(i))).permute(2, 0, 1))
        assert.equal([=[
tensor([[[ 0.,  4.,  8.],
         [12., 16., 20.]],

        [[ 1.,  5.,  9.],
         [13., 17., 21.]],

        [[ 2.,  6., 10.],
         [14., 18., 22.]],

        [[ 3.,  7., 11.],
         [15., 19., 23.]]])]=],
          tostring(mg.tensor(nest({2, 3, 4}, function(i) return i end)):permute(3, 1, 2)))
      end)
      it("prints a selected row", function()
        -- str(torch.tensor([[1, 2], [3.25, 4]])[1])
        assert.equal("tensor([3.2500, 4.0000])",
          tostring(mg.tensor{{1, 2}, {3.25, 4}}[2]))
      end)
      it("summarizes a transposed tensor", function()
        -- str(torch.tensor(nest([40, 30], lambda i: i)).t())
        assert.equal([=[
tensor([[   0,   30,   60,  ..., 1110, 1140, 1170],
        [   1,   31,   61,  ..., 1111, 1141, 1171],
        [   2,   32,   62,  ..., 1112, 1142, 1172],
        ...,
        [  27,   57,   87,  ..., 1137, 1167, 1197],
        [  28,   58,   88,  ..., 1138, 1168, 1198],
        [  29,   59,   89,  ..., 1139, 1169, 1199]])]=],
          tostring(mg.tensor(nest({40, 30}, function(i) return i end), {dtype = 'int64'}):t()))
      end)
      it("summarizes an expanded tensor", function()
        -- str(torch.tensor(seq(50, lambda i: i / 4)).expand(30, 50))
        assert.equal([=[
tensor([[ 0.0000,  0.2500,  0.5000,  ..., 11.7500, 12.0000, 12.2500],
        [ 0.0000,  0.2500,  0.5000,  ..., 11.7500, 12.0000, 12.2500],
        [ 0.0000,  0.2500,  0.5000,  ..., 11.7500, 12.0000, 12.2500],
        ...,
        [ 0.0000,  0.2500,  0.5000,  ..., 11.7500, 12.0000, 12.2500],
        [ 0.0000,  0.2500,  0.5000,  ..., 11.7500, 12.0000, 12.2500],
        [ 0.0000,  0.2500,  0.5000,  ..., 11.7500, 12.0000, 12.2500]])]=],
          tostring(mg.tensor(seq(50, function(i) return i / 4 end)):expand(30, 50)))
      end)
    end)

    describe("requires_grad", function()
      it_grad("adds requires_grad=true", function()
        -- str(torch.tensor([1., 2.], requires_grad=True))
        assert.equal("tensor([1., 2.], requires_grad=true)",
          tostring(mg.tensor({1, 2}, {requires_grad = true})))
      end)
      it_grad("puts requires_grad after the dtype", function()
        -- str(torch.tensor([1.5], dtype=torch.float64, requires_grad=True))
        assert.equal("tensor([1.5000], dtype=float64, requires_grad=true)",
          tostring(mg.tensor({1.5}, {dtype = 'float64', requires_grad = true})))
      end)
      it_grad("keeps requires_grad on the line of a wrapped dtype", function()
        -- str(torch.tensor(seq(7, lambda i: 123.4567), dtype=torch.float64, requires_grad=True))
        assert.equal([=[
tensor([123.4567, 123.4567, 123.4567, 123.4567, 123.4567, 123.4567, 123.4567],
       dtype=float64, requires_grad=true)]=],
          tostring(mg.tensor(seq(7, function() return 123.4567 end), {dtype = 'float64', requires_grad = true})))
      end)
      it_grad("wraps requires_grad alone when only it passes 80 columns", function()
        -- str(torch.tensor(seq(5, lambda i: 123.4567), dtype=torch.float64, requires_grad=True))
        assert.equal([=[
tensor([123.4567, 123.4567, 123.4567, 123.4567, 123.4567], dtype=float64,
       requires_grad=true)]=],
          tostring(mg.tensor(seq(5, function() return 123.4567 end), {dtype = 'float64', requires_grad = true})))
      end)
    end)
  -- END GENERATED

  describe("default dtype", function()
    after_each(function() mg.set_default_dtype("float32") end)

    it("names float32 and not float64 when float64 is the default", function()
      mg.set_default_dtype("float64")
      -- torch.set_default_dtype(torch.float64); str(torch.tensor([1.5], dtype=torch.float32))
      assert.equal("tensor([1.5000], dtype=float32)", tostring(mg.tensor({1.5}, {dtype = "float32"})))
      -- str(torch.tensor([1.5]))
      assert.equal("tensor([1.5000])", tostring(mg.tensor{1.5}))
      -- str(torch.tensor([], dtype=torch.float32))
      assert.equal("tensor([], dtype=float32)", tostring(mg.tensor({}, {dtype = "float32"})))
    end)
  end)

  describe("tostring()", function()
    it("is what print and string concatenation use", function()
      local t = mg.tensor{1, 2}
      assert.equal("x = tensor([1., 2.])", "x = " .. tostring(t))
      assert.equal("tensor([1., 2.])", ("%s"):format(t))
    end)

    it("refuses a tensor whose storage was released", function()
      local t = mg.tensor(seq(20000, function(i) return i end))
      getmetatable(t).__close(t)
      assert.error_matches(function() return tostring(t) end,
        "tensor used after its storage was released (by <close>)", 1, true)
    end)
  end)
end)
