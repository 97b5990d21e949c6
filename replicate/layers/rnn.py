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
        rp = self.param.recurrent_param

        hidden = caffe_pb2.LayerParameter()
        hidden.type = "InnerProduct"
        hidden.inner_product_param.num_output = H
        hidden.inner_product_param.bias_term = False
        hidden.inner_product_param.axis = 2
        hidden.inner_product_param.weight_filler.CopyFrom(rp.weight_filler)
        biased = caffe_pb2.LayerParameter()
        biased.CopyFrom(hidden)
        biased.inner_product_param.bias_term = True
        biased.inner_product_param.bias_filler.CopyFrom(rp.bias_filler)
        sum_param = caffe_pb2.LayerParameter()
        sum_param.type = "Eltwise"
        sum_param.eltwise_param.operation = caffe_pb2.EltwiseParameter.SUM
        tanh_param = caffe_pb2.LayerParameter()
        tanh_param.type = "TanH"
        scale_param = caffe_pb2.LayerParameter()
        scale_param.type = "Scale"
        scale_param.scale_param.axis = 0
        slice_param = caffe_pb2.LayerParameter()
        slice_param.type = "Slice"
        slice_param.slice_param.axis = 0

        inp = net_param.layer.add()
        inp.type = "Input"
        inp.top.append("h_0")
        inp.input_param.shape.add().dim.extend(self.recurrent_input_shapes()[0])

        cont_slice = net_param.layer.add()
        cont_slice.CopyFrom(slice_param)
        cont_slice.name = "cont_slice"
        cont_slice.bottom.append("cont")

        xt = net_param.layer.add()
        xt.CopyFrom(biased)
        xt.name = "x_transform"
        xt.param.add().name = "W_xh"
        xt.param.add().name = "b_h"
        xt.bottom.append("x")
        xt.top.append("W_xh_x")
        xt.propagate_down.append(True)

        if self.static_input:
            xs = net_param.layer.add()
            xs.CopyFrom(hidden)
            xs.inner_product_param.axis = 1
            xs.name = "W_xh_x_static"
            xs.param.add().name = "W_xh_static"
            xs.bottom.append("x_static")
            xs.top.append("W_xh_x_static_preshape")
            xs.propagate_down.append(True)
            rs = net_param.layer.add()
            rs.type = "Reshape"
            rs.reshape_param.shape.dim.extend([1, -1, xs.inner_product_param.num_output])
            rs.name = "W_xh_x_static_reshape"
            rs.bottom.append("W_xh_x_static_preshape")
            rs.top.append("W_xh_x_static")

        x_slice = net_param.layer.add()
        x_slice.CopyFrom(slice_param)
        x_slice.name = "W_xh_x_slice"
        x_slice.bottom.append("W_xh_x")

        concat = caffe_pb2.LayerParameter()
        concat.name = "o_concat"
        concat.type = "Concat"
        concat.top.append("o")
        concat.concat_param.axis = 0

        for t in range(1, self.T + 1):
            tm1s, ts = str(t - 1), str(t)
            cont_slice.top.append("cont_" + ts)
            x_slice.top.append("W_xh_x_" + ts)

            l = net_param.layer.add()
            l.CopyFrom(scale_param)
            l.name = "h_conted_" + tm1s
            l.bottom.extend(["h_" + tm1s, "cont_" + ts])
            l.top.append("h_conted_" + tm1s)

            l = net_param.layer.add()
            l.CopyFrom(hidden)
            l.name = "W_hh_h_" + tm1s
            l.param.add().name = "W_hh"
            l.bottom.append("h_conted_" + tm1s)
            l.top.append("W_hh_h_" + tm1s)
            l.inner_product_param.axis = 2

            l = net_param.layer.add()
            l.CopyFrom(sum_param)
            l.name = "h_input_sum_" + ts
            l.bottom.extend(["W_hh_h_" + tm1s, "W_xh_x_" + ts])
            if self.static_input:
                l.bottom.append("W_xh_x_static")
            l.top.append("h_neuron_input_" + ts)

            l = net_param.layer.add()
            l.CopyFrom(tanh_param)
            l.name = "h_neuron_" + ts
            l.bottom.append("h_neuron_input_" + ts)
            l.top.append("h_" + ts)

            l = net_param.layer.add()
            l.CopyFrom(biased)
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
