"""(being written) neural-network ops."""
def _todo(*a, **k):
    raise NotImplementedError
avg_pool2d = batch_norm = binary_cross_entropy = conv2d = dropout = group_norm = instance_norm = _todo
layer_norm = max_pool2d = maxout = mse = prelu = softmax_cross_entropy = _todo
