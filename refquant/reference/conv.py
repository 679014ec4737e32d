"""Integer convolution reference (ConvInteger, QLinearConv). STUB: being written."""


def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None,
                 group=1, kernel_shape=None, pads=None, strides=None, profile="onnx", opset=None):
    raise NotImplementedError


def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None,
                 profile="onnx", opset=None):
    raise NotImplementedError
