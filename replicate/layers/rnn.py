"""RNN (Caffe 1.0's rnn_layer.cpp): a :class:`~replicate.layers.recurrent.Recurrent` layer whose
unrolled net is Caffe's ``RNNLayer::FillUnrolledNet``, layer for layer:

    W_xh_x = W_xh x + b_h                     (x_transform: InnerProduct axis 2, params W_xh, b_h)
    [W_xh_x_static = W_xh_static x_static]    (InnerProduct axis 1, then Reshape 1 x -1 x H)
    for t = 1..T:  h_conted_{t-1} = cont_t * h_{t-1}              (Scale axis 0)
                   W_hh_h_{t-1} = W_hh h_conted_{t-1}             (InnerProduct, W_hh shared)
                   h_t = tanh(W_hh_h_{t-1} + W_xh_x_t [+ W_xh_x_static])   (Eltwise SUM, TanH)
                   o_t = tanh(W_ho h_t + b_o)                     (InnerProduct W_ho, b_o shared; TanH)
    o = Concat_0(o_1..o_T)

Params: W_xh (H x input), b_h (H), [W_xh_static], W_hh (H x H), W_ho (H x H), b_o (H).
"""
from __future__ import annotations

from prototxt_like import caffe_pb2

from .recurrent import Recurrent


class RNN(Recurrent):
    type = "RNN"

    def recurrent_input_names(self):
        return ["h_0"]

    def recurrent_output_names(self):
        return [f"h_{self.T}"]

    def recurrent_input_shapes(self):
        return [(1, self.N, self.num_output)]

    def output_names(self):
        return ["o"]

    def fill_unrolled_net(self, net_param):
        H = self.num_output
        if H <= 0:
            raise self.error("num_output must be positive")
        tpl = self._unrolled_templates(H)
        tanh_param = caffe_pb2.LayerParameter()
        tanh_param.type = "TanH"
        cont_slice, x_slice = self._add_unrolled_inputs(net_param, tpl, ["h_0"], "W_xh", "b_h")

        concat = self._unrolled_concat("o")

        for t in range(1, self.T + 1):
            tm1s, ts = str(t - 1), str(t)
            self._add_unrolled_sum(net_param, tpl, t, cont_slice, x_slice, "W_xh", "W_hh",
                                   "W_hh_h_" + tm1s, "h_input_sum_" + ts, "h_neuron_input_" + ts)

            l = net_param.layer.add()
            l.CopyFrom(tanh_param)
            l.name = "h_neuron_" + ts
            l.bottom.append("h_neuron_input_" + ts)
            l.top.append("h_" + ts)

            l = net_param.layer.add()
            l.CopyFrom(tpl["biased"])
            l.name = "W_ho_h_" + ts
            l.param.add().name = "W_ho"
            l.param.add().name = "b_o"
            l.bottom.append("h_" + ts)
            l.top.append("W_ho_h_" + ts)
            l.inner_product_param.axis = 2

            l = net_param.layer.add()
            l.CopyFrom(tanh_param)
            l.name = "o_neuron_" + ts
            l.bottom.append("W_ho_h_" + ts)
            l.top.append("o_" + ts)
            concat.bottom.append("o_" + ts)

        net_param.layer.add().CopyFrom(concat)


LAYER = RNN
