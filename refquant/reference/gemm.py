"""Integer GEMM reference (MatMulInteger, QLinearMatMul, QGemm, requantize). STUB: being written."""


def matmul_integer(A, B, a_zero_point=None, b_zero_point=None):
    raise NotImplementedError


def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *,
                   profile="onnx", opset=None):
    raise NotImplementedError


def qgemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C=None, y_scale=None, y_zero_point=None,
          *, alpha=1.0, transA=0, transB=0, profile="onnx", opset=None):
    raise NotImplementedError


def requantize(acc, multiplier, y_zero_point, *, output_dtype, bias=None, profile="onnx"):
    raise NotImplementedError


def accumulator_range(*args, **kwargs):
    raise NotImplementedError
