"""LSTM (Caffe 1.0's lstm_layer.cpp): a :class:`~replicate.layers.recurrent.Recurrent` layer whose
unrolled net is Caffe's ``LSTMLayer::FillUnrolledNet``, layer for layer:

    W_xc_x = W_xc x + b_c                     (x_transform: InnerProduct axis 2, params W_xc, b_c)
    [W_xc_x_static = W_xc_static x_static]    (InnerProduct axis 1, then Reshape 1 x -1 x 4H)
    for t = 1..T:  h_conted_{t-1} = cont_t * h_{t-1}              (Scale axis 0)
                   W_hc_h_{t-1} = W_hc h_conted_{t-1}             (transform_t: InnerProduct, W_hc shared)
                   gate_input_t = W_hc_h_{t-1} + W_xc_x_t [+ W_xc_x_static]   (Eltwise SUM)
                   c_t, h_t = LSTMUnit(c_{t-1}, gate_input_t, cont_t)
    c_T = Split(c_T); h = Concat_0(h_1..h_T)

Params: W_xc (4H x input), b_c (4H), [W_xc_static], W_hc (4H x H); gates in the order i, f, o, g.
"""
from __future__ import annotations

from prototxt_like import caffe_pb2

from .recurrent import Recurrent


class LSTM(Recurrent):
    type = "LSTM"

    def recurrent_input_names(self):
        return ["h_0", "c_0"]

    def recurrent_output_names(self):
        return [f"h_{self.T}", "c_T"]

    def recurrent_input_shapes(self):
        return [(1, self.N, self.num_output)] * 2

    def output_names(self):
        return ["h"]

    def fill_unrolled_net(self, net_param):
        H = self.num_output
        if H <= 0:
            raise self.error("num_output must be positive")
        rp = self.param.recurrent_param

        hidden = caffe_pb2.LayerParameter()
        hidden.type = "InnerProduct"
        hidden.inner_product_param.num_output = H * 4
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
        scale_param = caffe_pb2.LayerParameter()
        scale_param.type = "Scale"
        scale_param.scale_param.axis = 0
        slice_param = caffe_pb2.LayerParameter()
        slice_param.type = "Slice"
        slice_param.slice_param.axis = 0

        shapes = self.recurrent_input_shapes()
        inp = net_param.layer.add()
        inp.type = "Input"
        inp.top.append("c_0")
        inp.input_param.shape.add().dim.extend(shapes[0])
        inp.top.append("h_0")
        inp.input_param.shape.add().dim.extend(shapes[1])

        cont_slice = net_param.layer.add()
        cont_slice.CopyFrom(slice_param)
        cont_slice.name = "cont_slice"
        cont_slice.bottom.append("cont")

        xt = net_param.layer.add()
        xt.CopyFrom(biased)
        xt.name = "x_transform"
        xt.param.add().name = "W_xc"
        xt.param.add().name = "b_c"
        xt.bottom.append("x")
        xt.top.append("W_xc_x")
        xt.propagate_down.append(True)

        if self.static_input:
            xs = net_param.layer.add()
            xs.CopyFrom(hidden)
            xs.inner_product_param.axis = 1
            xs.name = "W_xc_x_static"
            xs.param.add().name = "W_xc_static"
            xs.bottom.append("x_static")
            xs.top.append("W_xc_x_static_preshape")
            xs.propagate_down.append(True)
            rs = net_param.layer.add()
            rs.type = "Reshape"
            rs.reshape_param.shape.dim.extend([1, -1, xs.inner_product_param.num_output])
            rs.name = "W_xc_x_static_reshape"
            rs.bottom.append("W_xc_x_static_preshape")
            rs.top.append("W_xc_x_static")

        x_slice = net_param.layer.add()
        x_slice.CopyFrom(slice_param)
        x_slice.bottom.append("W_xc_x")
        x_slice.name = "W_xc_x_slice"

        concat = caffe_pb2.LayerParameter()
        concat.name = "h_concat"
        concat.type = "Concat"
        concat.top.append("h")
        concat.concat_param.axis = 0

        for t in range(1, self.T + 1):
            tm1s, ts = str(t - 1), str(t)
            cont_slice.top.append("cont_" + ts)
            x_slice.top.append("W_xc_x_" + ts)

            l = net_param.layer.add()
            l.CopyFrom(scale_param)
            l.name = "h_conted_" + tm1s
            l.bottom.extend(["h_" + tm1s, "cont_" + ts])
            l.top.append("h_conted_" + tm1s)

            l = net_param.layer.add()
            l.CopyFrom(hidden)
            l.name = "transform_" + ts
            l.param.add().name = "W_hc"
            l.bottom.append("h_conted_" + tm1s)
            l.top.append("W_hc_h_" + tm1s)
            l.inner_product_param.axis = 2

            l = net_param.layer.add()
            l.CopyFrom(sum_param)
            l.name = "gate_input_" + ts
            l.bottom.extend(["W_hc_h_" + tm1s, "W_xc_x_" + ts])
            if self.static_input:
                l.bottom.append("W_xc_x_static")
            l.top.append("gate_input_" + ts)

            l = net_param.layer.add()
            l.type = "LSTMUnit"
            l.bottom.extend(["c_" + tm1s, "gate_input_" + ts, "cont_" + ts])
            l.top.extend(["c_" + ts, "h_" + ts])
            l.name = "unit_" + ts
            concat.bottom.append("h_" + ts)

        l = net_param.layer.add()  # an unnamed Split (named "<layer>_" once prefixed)
        l.type = "Split"
        l.bottom.append(f"c_{self.T}")
        l.top.append("c_T")
        net_param.layer.add().CopyFrom(concat)


LAYER = LSTM
