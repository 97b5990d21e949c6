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
        tpl = self._unrolled_templates(H * 4)
        cont_slice, x_slice = self._add_unrolled_inputs(net_param, tpl, ["c_0", "h_0"], "W_xc", "b_c")

        concat = self._unrolled_concat("h")

        for t in range(1, self.T + 1):
            tm1s, ts = str(t - 1), str(t)
            self._add_unrolled_sum(net_param, tpl, t, cont_slice, x_slice, "W_xc", "W_hc",
                                   "transform_" + ts, "gate_input_" + ts, "gate_input_" + ts)

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
