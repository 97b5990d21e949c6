"""Caffe 1.0's RecurrentLayer (recurrent_layer.cpp), the base of LSTM and RNN.

Caffe does not compute a recurrent layer itself: at set-up it writes a NetParameter for the net
unrolled over the T timesteps (the subclass's ``FillUnrolledNet``: InnerProduct axis 2, Slice,
Scale, Eltwise SUM, LSTMUnit / TanH, Concat ...), builds a ``Net`` from it and runs that net in
Forward (``ForwardTo`` the last real layer) and Backward (``BackwardFrom`` it).  This module does the
same with :class:`replicate.net.Net`, so every internal layer computes with Caffe's own kernels in
Caffe's order:

* the unrolled NetParameter is Caffe's, layer for layer and name for name: an Input layer ``x``,
  ``cont`` [, ``x_static``], the subclass's layers, every layer name prefixed with ``<layer name>_``,
  then one ``Reduction`` "pseudo-loss" (loss_weight 1) per output, which makes the net back-propagate
  to the outputs but never runs.  The unrolled net has its own (default) state: phase TEST and no
  ``force_backward``; Caffe's Split insertion and backward pruning apply inside it.
* Its InnerProduct layers fill their weights from this net's RNG, in the unrolled net's layer order,
  each copy of a shared weight (W_hc, W_hh ...) drawing its own values before the share discards
  them, as Caffe's layers do.  The layer's parameter blobs are the unrolled net's *owned* params in
  net order (LSTM: W_xc, b_c, [W_xc_static], W_hc; RNN: W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o):
  the same :class:`~replicate.layers.base.Param` objects, so weights copied into the layer and
  diffs accumulated by the unrolled net are shared as Caffe shares its blobs.  Blobs given inline in
  the LayerParameter are discarded (Caffe's LayerSetUp clears ``blobs_``).
* Bottoms: x (T x N x ...), cont (T x N, never back-propagated to), [x_static (N x ...)], and with
  ``expose_hidden`` the initial recurrent states (their data only: no diff flows back to them).  Tops:
  the outputs (h, o: T x N x num_output) and with ``expose_hidden`` the final recurrent states.
* Without ``expose_hidden`` the state carries over between forward passes: each Forward first copies
  the last pass's final states (h_T, c_T) into the initial ones (h_0, c_0); the first pass starts
  from zeros.  Caffe reads the final state's blob memory, so after N grows the carried state is
  zeros, and after N shrinks it is the first N x num_output values of the last state.
"""
from __future__ import annotations

import contextlib
from typing import List

import torch

from prototxt_like import caffe_pb2

from .base import Layer
from .sigmoid import require_cpu


class Recurrent(Layer):
    min_bottoms = 2

    # --- the subclass's part (Caffe's pure virtuals) ----------------------------------------
    def recurrent_input_names(self) -> List[str]:
        raise NotImplementedError

    def recurrent_output_names(self) -> List[str]:
        raise NotImplementedError

    def recurrent_input_shapes(self) -> List[tuple]:
        raise NotImplementedError

    def output_names(self) -> List[str]:
        raise NotImplementedError

    def fill_unrolled_net(self, net_param: caffe_pb2.NetParameter) -> None:
        raise NotImplementedError

    # --- the parts of FillUnrolledNet that LSTM and RNN write alike --------------------------
    def _unrolled_templates(self, num_output: int):
        """The LayerParameters FillUnrolledNet copies its layers from: ``hidden`` (InnerProduct
        axis 2 with ``num_output`` outputs, no bias), ``biased`` (the same with the bias), ``sum``
        (Eltwise SUM), ``scale`` (Scale axis 0) and ``slice`` (Slice axis 0)."""
        rp = self.param.recurrent_param
        hidden = caffe_pb2.LayerParameter()
        hidden.type = "InnerProduct"
        hidden.inner_product_param.num_output = num_output
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
        return {"hidden": hidden, "biased": biased, "sum": sum_param, "scale": scale_param,
                "slice": slice_param}

    def _add_unrolled_inputs(self, net_param, tpl, state_names, w_x: str, b: str):
        """The layers before the timesteps: the Input of the initial states ``state_names``, the
        ``cont`` Slice, ``x_transform`` (``w_x`` x + ``b``), [``w_x``_static x_static and its
        Reshape] and the Slice of ``w_x``_x.  Returns the two Slices (their tops come per step)."""
        inp = net_param.layer.add()
        inp.type = "Input"
        for name, shape in zip(state_names, self.recurrent_input_shapes()):
            inp.top.append(name)
            inp.input_param.shape.add().dim.extend(shape)

        cont_slice = net_param.layer.add()
        cont_slice.CopyFrom(tpl["slice"])
        cont_slice.name = "cont_slice"
        cont_slice.bottom.append("cont")

        xt = net_param.layer.add()
        xt.CopyFrom(tpl["biased"])
        xt.name = "x_transform"
        xt.param.add().name = w_x
        xt.param.add().name = b
        xt.bottom.append("x")
        xt.top.append(f"{w_x}_x")
        xt.propagate_down.append(True)

        if self.static_input:
            xs = net_param.layer.add()
            xs.CopyFrom(tpl["hidden"])
            xs.inner_product_param.axis = 1
            xs.name = f"{w_x}_x_static"
            xs.param.add().name = f"{w_x}_static"
            xs.bottom.append("x_static")
            xs.top.append(f"{w_x}_x_static_preshape")
            xs.propagate_down.append(True)
            rs = net_param.layer.add()
            rs.type = "Reshape"
            rs.reshape_param.shape.dim.extend([1, -1, xs.inner_product_param.num_output])
            rs.name = f"{w_x}_x_static_reshape"
            rs.bottom.append(f"{w_x}_x_static_preshape")
            rs.top.append(f"{w_x}_x_static")

        x_slice = net_param.layer.add()
        x_slice.CopyFrom(tpl["slice"])
        x_slice.name = f"{w_x}_x_slice"
        x_slice.bottom.append(f"{w_x}_x")
        return cont_slice, x_slice

    @staticmethod
    def _unrolled_concat(top: str) -> caffe_pb2.LayerParameter:
        """The Concat (axis 0) ``<top>_concat`` of the per-step outputs into ``top``; the caller
        appends its bottoms step by step and adds it to the net last."""
        concat = caffe_pb2.LayerParameter()
        concat.name = f"{top}_concat"
        concat.type = "Concat"
        concat.top.append(top)
        concat.concat_param.axis = 0
        return concat

    def _add_unrolled_sum(self, net_param, tpl, t: int, cont_slice, x_slice, w_x: str, w_h: str,
                          transform_name: str, sum_name: str, sum_top: str) -> None:
        """Timestep ``t``'s first layers: the Slices' tops cont_t and ``w_x``_x_t, h_conted_{t-1}
        = cont_t * h_{t-1} (Scale), ``w_h``_h_{t-1} = ``w_h`` h_conted_{t-1} (InnerProduct
        ``transform_name``) and ``sum_top`` = ``w_h``_h_{t-1} + ``w_x``_x_t [+ ``w_x``_x_static]
        (Eltwise ``sum_name``)."""
        tm1s, ts = str(t - 1), str(t)
        cont_slice.top.append("cont_" + ts)
        x_slice.top.append(f"{w_x}_x_" + ts)

        l = net_param.layer.add()
        l.CopyFrom(tpl["scale"])
        l.name = "h_conted_" + tm1s
        l.bottom.extend(["h_" + tm1s, "cont_" + ts])
        l.top.append("h_conted_" + tm1s)

        l = net_param.layer.add()
        l.CopyFrom(tpl["hidden"])
        l.name = transform_name
        l.param.add().name = w_h
        l.bottom.append("h_conted_" + tm1s)
        l.top.append(f"{w_h}_h_" + tm1s)
        l.inner_product_param.axis = 2

        l = net_param.layer.add()
        l.CopyFrom(tpl["sum"])
        l.name = sum_name
        l.bottom.extend([f"{w_h}_h_" + tm1s, f"{w_x}_x_" + ts])
        if self.static_input:
            l.bottom.append(f"{w_x}_x_static")
        l.top.append(sum_top)

    # --------------------------------------------------------------------------------------
    def __init__(self, param, ctx):
        super().__init__(param, ctx)
        p = param.recurrent_param
        self.num_output = int(p.num_output)
        self.expose_hidden = bool(p.expose_hidden)
        self.unrolled = None
        self.T = self.N = None
        self.static_input = False
        self._state: List[torch.Tensor] = []  # the memory of each final recurrent state (Reset: zeros)

    def check_bottoms(self, bottoms) -> None:
        n_recur = len(self.recurrent_input_names()) if self.expose_hidden else 0
        lo = 2 + n_recur
        n = len(bottoms)
        if not lo <= n <= lo + 1:
            raise self.error(f"takes {lo}..{lo + 1} bottom blob(s) (x, cont, [x_static]"
                             + (", the initial recurrent states" if n_recur else "") + f"), got {n}")
        want_tops = len(self.output_names()) + (len(self.recurrent_output_names()) if self.expose_hidden else 0)
        if self.n_tops != want_tops:
            raise self.error(f"takes exactly {want_tops} top blob(s), got {self.n_tops}")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1  # never to the sequence continuation indicators

    def _check_shapes(self, bottoms, setup: bool):
        x, cont = bottoms[0], bottoms[1]
        if x.dim() < 2:
            raise self.error(f"bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...), "
                             f"got shape {tuple(x.shape)}")
        if setup:
            self.T = int(x.shape[0])
        elif int(x.shape[0]) != self.T:
            raise self.error(f"input number of timesteps changed ({self.T} at set-up, now {x.shape[0]})")
        self.N = int(x.shape[1])
        if cont.dim() != 2:
            raise self.error(f"bottom[1] must have exactly 2 axes -- (#timesteps, #streams), got shape "
                             f"{tuple(cont.shape)}")
        if tuple(cont.shape) != (self.T, self.N):
            raise self.error(f"bottom[1] (cont) has shape {tuple(cont.shape)}, bottom[0] needs {self.T} x {self.N}")

    def setup(self, bottoms):
        from ..net import Net, NetError
        self._check_shapes(bottoms, setup=True)
        n_recur = len(self.recurrent_input_names())
        if len(self.recurrent_output_names()) != n_recur:
            raise self.error("the recurrent input and output names differ in number")
        self.static_input = len(bottoms) > 2 + (n_recur if self.expose_hidden else 0)
        if self.static_input:
            xs = bottoms[2]
            if xs.dim() < 1 or int(xs.shape[0]) != self.N:
                raise self.error(f"bottom[2] (x_static) must be N x ... with N = {self.N}, got shape "
                                 f"{tuple(xs.shape)}")
        net_param = caffe_pb2.NetParameter()
        inp = net_param.layer.add()
        inp.type = "Input"
        inp.top.append("x")
        inp.input_param.shape.add().dim.extend(int(d) for d in bottoms[0].shape)
        inp.top.append("cont")
        inp.input_param.shape.add().dim.extend(int(d) for d in bottoms[1].shape)
        if self.static_input:
            inp.top.append("x_static")
            inp.input_param.shape.add().dim.extend(int(d) for d in bottoms[2].shape)
        self.fill_unrolled_net(net_param)
        if self.name:
            for lp in net_param.layer:
                lp.name = f"{self.name}_{lp.name}"
        pseudo = []
        for out in self.output_names():
            lp = net_param.layer.add()
            lp.name = f"{out}_pseudoloss"
            lp.type = "Reduction"
            lp.bottom.append(out)
            lp.top.append(lp.name)
            lp.loss_weight.append(1.0)
            pseudo.append(lp.name)
        try:
            net = Net(net_param, rng=self.ctx.rng, device=self.ctx.device)
        except NetError as e:
            raise self.error(f"in its unrolled net: {e}") from None
        names = net.layer_names
        self.last_layer_index = len(names) - 1 - len(pseudo)
        if names[self.last_layer_index + 1:] != pseudo:
            raise self.error(f"the unrolled net's last layers are {names[self.last_layer_index + 1:]}, "
                             f"not the pseudo-losses {pseudo}")
        n_inputs = 2 + n_recur + int(self.static_input)
        if len(net.input_names) != n_inputs:
            raise self.error(f"the unrolled net has {len(net.input_names)} input blobs, expected {n_inputs}")
        for name in ["x", "cont"] + self.recurrent_input_names() + self.recurrent_output_names() + self.output_names():
            if name not in net.blobs:
                raise self.error(f"the unrolled net has no blob {name!r}")
        self.unrolled = net
        # the unrolled net's own params (not the shared copies), in its order
        self.params = list(net.learnable)
        self._state = [None] * n_recur

    @contextlib.contextmanager
    def _unrolled_errors(self):
        """An error of the unrolled net (a NetError naming an internal layer) names this layer too."""
        from ..net import NetError
        try:
            yield
        except NetError as e:
            raise self.error(f"in its unrolled net: {e}") from e

    def reset(self) -> None:
        """RecurrentLayer::Reset: zero the final recurrent states (the next forward starts from 0)."""
        for s in self._state:
            if s is not None:
                s.zero_()

    def _recur_inputs(self, bottoms):
        shapes = self.recurrent_input_shapes()
        out = []
        if self.expose_hidden:
            offset = 2 + int(self.static_input)
            for j, (shape, b) in enumerate(zip(shapes, bottoms[offset:])):
                if tuple(b.shape) != tuple(shape):
                    raise self.error(f"shape mismatch - recurrent input {j} ({self.recurrent_input_names()[j]}) "
                                     f"is {' '.join(map(str, shape))}, bottom[{offset + j}] is "
                                     f"{' '.join(map(str, b.shape))}")
                out.append(b)
            return out
        for j, shape in enumerate(shapes):
            count = 1
            for d in shape:
                count *= int(d)
            mem = self._state[j]
            if mem is None or count > mem.numel():  # Blob::Reshape beyond its capacity: fresh zeros
                mem = torch.zeros(count, dtype=self.ctx.dtype, device=self.ctx.device)
                self._state[j] = mem
            out.append(mem[:count].clone().view(shape))
        return out

    def forward(self, bottoms):
        net = self.unrolled
        self._check_shapes(bottoms, setup=False)
        if self.ctx.shape_only:
            shapes = [(self.T, self.N, self.num_output)] * len(self.output_names())
            if self.expose_hidden:
                shapes += [tuple(s) for s in self.recurrent_input_shapes()]
            return [torch.empty(s, dtype=self.ctx.dtype, device="meta") for s in shapes]
        require_cpu(self, bottoms)
        if self.static_input and int(bottoms[2].shape[0]) != self.N:
            raise self.error(f"bottom[2] (x_static) has {bottoms[2].shape[0]} streams, bottom[0] {self.N}")
        net.blobs["x"].data = bottoms[0]
        net.blobs["cont"].data = bottoms[1]
        if self.static_input:
            net.blobs["x_static"].data = bottoms[2]
        for name, data in zip(self.recurrent_input_names(), self._recur_inputs(bottoms)):
            net.blobs[name].data = data
        with self._unrolled_errors():
            net.forward(0, self.last_layer_index)
        finals = [net.blobs[name].data for name in self.recurrent_output_names()]
        if not self.expose_hidden:
            for j, h in enumerate(finals):
                self._state[j][:h.numel()] = h.reshape(-1)
        tops = [net.blobs[name].data for name in self.output_names()]
        if self.expose_hidden:
            tops += finals
        return tops

    def backward(self, tops, top_diffs, propagate_down, bottoms):
        if propagate_down[1]:
            raise self.error("Cannot backpropagate to sequence indicators.")
        net = self.unrolled
        require_cpu(self, list(bottoms) + list(top_diffs))
        # the outputs share their diffs with the tops (the exposed final states do not)
        for name, d in zip(self.output_names(), top_diffs):
            net.blobs[name].diff = d
        with self._unrolled_errors():
            net.backward(self.last_layer_index, 0)
        out = [None] * len(bottoms)
        if propagate_down[0]:
            out[0] = net.blobs["x"].diff_or_zeros()
        if self.static_input and propagate_down[2]:
            out[2] = net.blobs["x_static"].diff_or_zeros()
        return out

