"""Group C of ../shared/golden/layers_more, bit for bit in exact mode: the recurrent layers LSTMUnit,
LSTM and RNN (the last two run Caffe's unrolled net through replicate.net.Net): every blob after
forward, and after backward every blob diff and parameter diff.  Then what the golden cases do not
reach: static input, expose_hidden, the state carried between passes, the fillers' draw order."""
from __future__ import annotations

import pytest
import torch

from prototxt_like import caffe_pb2
from prototxt_like.codec import parse_text
from replicate import ops as R
from replicate.fillers import fill
from replicate.layers import LayerError
from replicate.net import Net, NetError
from replicate.rng import CaffeRNG
from tests._shared import require
from tests.ops.golden import assert_bits, assert_golden_bits, assert_golden_close, exact_blas_ready, run_golden

CASES = ["lstm_unit", "lstm", "rnn"]
BLAS_CASES = ["lstm", "rnn"]  # the unrolled nets' InnerProduct GEMMs and Eltwise axpys


def _run(case: str):
    """The case's net (its weights loaded), its inputs and top diffs through ``run_blobs``."""
    return run_golden(require("golden", "layers_more", case))


@pytest.mark.parametrize("case", CASES)
def test_layers_more_c_exact(case):
    exact_blas_ready()
    with R.blas_mode("exact"):
        out, forward, backward = _run(case)
    assert_golden_bits(case, out, forward, backward)  # the unrolled net's internal blobs are not net blobs
    assert {k for k in out if k.startswith("param_diff/")} == {k for k in backward if k.startswith("param_diff/")}


@pytest.mark.parametrize("case", BLAS_CASES)
def test_layers_more_c_fast_close(case):
    with R.blas_mode("fast"):
        out, forward, backward = _run(case)
    assert_golden_close(case, out, forward, backward)


# ---- helpers ------------------------------------------------------------------------------------

def _net(text: str, seed: int = 0) -> Net:
    return Net(parse_text(text, caffe_pb2.NetParameter), caffe_pb2.TEST, rng=CaffeRNG(seed))


def _recurrent_net(kind: str, *, T=3, N=2, D=5, H=4, static=0, expose=False, force=True, name="rec",
                   fillers=True) -> Net:
    tops = ["x", "cont"] + (["xs"] if static else [])
    shapes = [(T, N, D), (T, N)] + ([(N, static)] if static else [])
    n_recur = (2 if kind == "LSTM" else 1) if expose else 0
    recur_in = ["h0", "c0"][:n_recur]
    tops += recur_in
    shapes += [(1, N, H)] * n_recur
    inp = ("layer { name: 'data' type: 'Input' " + " ".join(f"top: '{t}'" for t in tops) + " input_param { "
           + " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes) + " } }\n")
    out_tops = ["out"] + (["hT", "cT"][:n_recur])
    fill_txt = ("weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'uniform' min: -0.2 max: 0.2 }"
                if fillers else "")
    layer = (f"layer {{ name: '{name}' type: '{kind}' " + " ".join(f"bottom: '{b}'" for b in tops)
             + " " + " ".join(f"top: '{t}'" for t in out_tops)
             + f" recurrent_param {{ num_output: {H} {fill_txt} "
             + ("expose_hidden: true " if expose else "") + "} }\n")
    return _net(("force_backward: true\n" if force else "") + inp + layer)


def _cont(T, N):
    c = torch.ones(T, N)
    c[0] = 0
    c[T - 1, 0] = 0  # a sequence restarting inside the batch
    return c


def _reference(kind, params, x, cont, xs=None, h0=None, c0=None):
    """The recurrences in float64 with autograd (Caffe's equations; gates i, f, o, g)."""
    T, N = cont.shape
    ps = [p.double().clone().requires_grad_(True) for p in params]
    x = x.double().clone().requires_grad_(True)
    xs = None if xs is None else xs.double().clone().requires_grad_(True)
    cont = cont.double()
    if kind == "LSTM":
        if xs is not None:
            w_xc, b_c, w_s, w_hc = ps
        else:
            (w_xc, b_c, w_hc), w_s = ps, None
        H = w_hc.shape[1]
        h = torch.zeros(N, H, dtype=torch.float64) if h0 is None else h0.double().reshape(N, H)
        c = torch.zeros(N, H, dtype=torch.float64) if c0 is None else c0.double().reshape(N, H)
        outs = []
        for t in range(T):
            k = cont[t][:, None]
            g = x[t] @ w_xc.T + b_c + (k * h) @ w_hc.T
            if w_s is not None:
                g = g + xs.reshape(N, -1) @ w_s.T
            i, f, o, gg = g[:, :H].sigmoid(), g[:, H:2 * H].sigmoid() * k, g[:, 2 * H:3 * H].sigmoid(), g[:, 3 * H:].tanh()
            c = f * c + i * gg
            h = o * c.tanh()
            outs.append(h)
        return torch.stack(outs), (h, c), ps, x, xs
    if xs is not None:
        w_xh, b_h, w_s, w_hh, w_ho, b_o = ps
    else:
        (w_xh, b_h, w_hh, w_ho, b_o), w_s = ps, None
    H = w_hh.shape[0]
    h = torch.zeros(N, H, dtype=torch.float64) if h0 is None else h0.double().reshape(N, H)
    outs = []
    for t in range(T):
        k = cont[t][:, None]
        a = x[t] @ w_xh.T + b_h + (k * h) @ w_hh.T
        if w_s is not None:
            a = a + xs.reshape(N, -1) @ w_s.T
        h = a.tanh()
        outs.append((h @ w_ho.T + b_o).tanh())
    return torch.stack(outs), (h,), ps, x, xs


# ---- static input, parameters, fillers ----------------------------------------------------------

@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
@pytest.mark.parametrize("static", [0, 3])
def test_recurrent_matches_the_equations(kind, static):
    """Forward and every diff (x, x_static, each param) against the recurrences in float64."""
    T, N, D, H = 4, 3, 5, 4
    net = _recurrent_net(kind, T=T, N=N, D=D, H=H, static=static)
    layer = net.layer("rec")
    n_params = (3 if kind == "LSTM" else 5) + (1 if static else 0)
    assert len(layer.params) == n_params
    g = torch.Generator().manual_seed(7)
    x = torch.randn(T, N, D, generator=g)
    cont = _cont(T, N)
    xs = torch.randn(N, static, generator=g) if static else None
    net.blobs["x"].data = x
    net.blobs["cont"].data = cont
    if static:
        net.blobs["xs"].data = xs
    net.forward()
    td = torch.randn(T, N, H, generator=g)
    net.blobs["out"].diff = td
    net.backward()
    ref, _, ps, rx, rxs = _reference(kind, [p.data for p in layer.params], x, cont, xs)
    ref.backward(td.double())
    torch.testing.assert_close(net.blobs["out"].data.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net.blobs["x"].diff.double(), rx.grad, rtol=1e-4, atol=1e-5)
    if static:
        torch.testing.assert_close(net.blobs["xs"].diff.double(), rxs.grad, rtol=1e-4, atol=1e-5)
    for p, rp in zip(layer.params, ps):
        torch.testing.assert_close(p.diff.double(), rp.grad, rtol=1e-4, atol=1e-5)
    assert torch.count_nonzero(net.blobs["cont"].diff_or_zeros()) == 0


def test_param_shapes_and_order():
    lstm = _recurrent_net("LSTM", D=5, H=4, static=3).layer("rec")
    assert [p.shape for p in lstm.params] == [(16, 5), (16,), (16, 3), (16, 4)]
    rnn = _recurrent_net("RNN", D=5, H=4, static=3).layer("rec")
    assert [p.shape for p in rnn.params] == [(4, 5), (4,), (4, 3), (4, 4), (4, 4), (4,)]


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_fillers_draw_in_the_unrolled_nets_order(kind):
    """Each InnerProduct of the unrolled net fills its blobs from the net's RNG in layer order; the
    copies of a shared weight draw too (their values are dropped by the share), so a layer after the
    recurrent one sees the RNG past all of them."""
    T, D, H, seed = 3, 5, 4, 11
    text = ("layer { name: 'data' type: 'Input' top: 'x' top: 'cont' input_param { shape { dim: 3 dim: 2 dim: 5 } "
            "shape { dim: 3 dim: 2 } } }\n"
            f"layer {{ name: 'rec' type: '{kind}' bottom: 'x' bottom: 'cont' top: 'out' recurrent_param {{ "
            f"num_output: {H} weight_filler {{ type: 'gaussian' std: 0.3 }} "
            "bias_filler { type: 'uniform' min: -0.2 max: 0.2 } } }\n"
            "layer { name: 'after' type: 'InnerProduct' bottom: 'out' top: 'y' inner_product_param { "
            "num_output: 2 axis: 2 weight_filler { type: 'gaussian' std: 1 } bias_term: false } }\n")
    net = _net(text, seed)
    gw = caffe_pb2.FillerParameter(type="gaussian", std=0.3)
    ub = caffe_pb2.FillerParameter(type="uniform", min=-0.2, max=0.2)
    rng = CaffeRNG(seed)
    G = 4 * H if kind == "LSTM" else H
    expect = [fill(gw, (G, D), rng), fill(ub, (G,), rng)]
    if kind == "LSTM":
        for t in range(T):  # transform_1..T (W_hc)
            w = fill(gw, (G, H), rng)
            if t == 0:
                expect.append(w)
    else:
        for t in range(T):  # W_hh_h_{t-1} (W_hh), W_ho_h_t (W_ho, b_o)
            w_hh = fill(gw, (H, H), rng)
            w_ho, b_o = fill(gw, (H, H), rng), fill(ub, (H,), rng)
            if t == 0:
                expect += [w_hh, w_ho, b_o]
    after = fill(caffe_pb2.FillerParameter(type="gaussian", std=1), (2, H), rng)
    got = [p.data.numpy() for p in net.layer("rec").params]
    assert len(got) == len(expect)
    for a, b in zip(got, expect):
        assert_bits(a, b, f"{kind} param")
    assert_bits(net.layer("after").params[0].data.numpy(), after, "the next layer's weights")


def test_inline_blobs_are_discarded_and_weights_round_trip(tmp_path):
    """Caffe's LayerSetUp clears blobs_ (inline blobs are dropped; the fillers run); a saved model
    loads back into the unrolled net (the layer's params are the unrolled net's own blobs)."""
    net = _recurrent_net("LSTM")
    path = tmp_path / "w.caffemodel"
    net.save(path)
    other = _recurrent_net("LSTM", fillers=False)
    assert all(torch.count_nonzero(p.data) == 0 for p in other.layer("rec").params)
    other.copy_trained_layers_from(str(path))
    x, cont = torch.randn(3, 2, 5), _cont(3, 2)
    outs = []
    for n in (net, other):
        n.blobs["x"].data, n.blobs["cont"].data = x, cont
        n.forward()
        outs.append(n.blobs["out"].data.clone())
    assert torch.equal(outs[0], outs[1])
    # the same prototxt with the saved blobs inline: Caffe ignores them
    proto = net.to_proto()
    inline = caffe_pb2.NetParameter()
    inline.CopyFrom(proto)
    for lp in inline.layer:
        if lp.type == "LSTM":
            for b in lp.blobs:
                b.data[:] = [0.0] * len(b.data)
    again = Net(inline, caffe_pb2.TEST, rng=CaffeRNG(0))
    for p, q in zip(again.layer("rec").params, net.layer("rec").params):
        assert torch.equal(p.data, q.data)


# ---- the recurrent state ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_state_carries_over_and_matches_expose_hidden(kind):
    """Without expose_hidden, each forward starts from the last pass's final states (the first from
    zeros): bit for bit what an expose_hidden net computes from those states as bottoms."""
    T, N, H = 3, 2, 4
    net = _recurrent_net(kind, T=T, N=N, H=H)
    exposed = _recurrent_net(kind, T=T, N=N, H=H, expose=True)
    for p, q in zip(exposed.layer("rec").params, net.layer("rec").params):
        p.data.copy_(q.data)
    g = torch.Generator().manual_seed(3)
    x1, x2 = torch.randn(T, N, 5, generator=g), torch.randn(T, N, 5, generator=g)
    cont = torch.ones(T, N)
    net.blobs["x"].data, net.blobs["cont"].data = x1, cont
    net.forward()
    first = net.blobs["out"].data.clone()
    finals = [net.layer("rec").unrolled.blobs[n].data.clone() for n in net.layer("rec").recurrent_output_names()]
    exposed.blobs["x"].data, exposed.blobs["cont"].data = x1, cont
    for name in ["h0", "c0"][:len(finals)]:
        exposed.blobs[name].data = torch.zeros(1, N, H)
    exposed.forward()
    assert torch.equal(exposed.blobs["out"].data, first)
    assert torch.equal(exposed.blobs["hT"].data, finals[0])
    if kind == "LSTM":
        assert torch.equal(exposed.blobs["cT"].data, finals[1])
    net.blobs["x"].data = x2
    net.forward()
    second = net.blobs["out"].data.clone()
    exposed.blobs["x"].data = x2
    for name, f in zip(["h0", "c0"], finals):
        exposed.blobs[name].data = f
    exposed.forward()
    assert torch.equal(exposed.blobs["out"].data, second)
    assert not torch.equal(first, second)
    # Reset zeroes the state: the next pass is the first one again
    net.layer("rec").reset()
    net.blobs["x"].data = x1
    net.forward()
    assert torch.equal(net.blobs["out"].data, first)


def test_expose_hidden_gives_no_diff_to_the_initial_states():
    net = _recurrent_net("LSTM", expose=True)
    assert net.layer("rec").n_tops == 3
    net.blobs["x"].data, net.blobs["cont"].data = torch.randn(3, 2, 5), torch.ones(3, 2)
    net.blobs["h0"].data, net.blobs["c0"].data = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    net.forward()
    assert net.blobs["hT"].data.shape == (1, 2, 4) and net.blobs["cT"].data.shape == (1, 2, 4)
    net.blobs["out"].diff = torch.randn(3, 2, 4)
    net.backward()
    assert torch.count_nonzero(net.blobs["h0"].diff_or_zeros()) == 0
    assert torch.count_nonzero(net.blobs["c0"].diff_or_zeros()) == 0
    assert torch.count_nonzero(net.blobs["x"].diff) > 0


def test_batch_size_may_change_but_not_timesteps():
    net = _recurrent_net("RNN", T=3, N=2)
    net.blobs["x"].data, net.blobs["cont"].data = torch.randn(3, 4, 5), torch.ones(3, 4)
    net.forward()
    assert net.blobs["out"].data.shape == (3, 4, 4)
    net.blobs["x"].data, net.blobs["cont"].data = torch.randn(2, 4, 5), torch.ones(2, 4)
    with pytest.raises(LayerError, match="timesteps changed"):
        net.forward()


# ---- refusals -----------------------------------------------------------------------------------

def test_no_gradient_to_cont():
    """An explicit ``propagate_down: true`` for cont, under a loss: Caffe's CHECK fails, so do we."""
    text = ("layer { name: 'data' type: 'Input' top: 'x' top: 'cont' input_param { shape { dim: 3 dim: 2 dim: 5 } "
            "shape { dim: 3 dim: 2 } } }\n"
            "layer { name: 'rec' type: 'RNN' bottom: 'x' bottom: 'cont' top: 'out' propagate_down: true "
            "propagate_down: true recurrent_param { num_output: 4 } }\n"
            "layer { name: 'loss' type: 'Reduction' bottom: 'out' top: 'loss' loss_weight: 1 }\n")
    net = _net(text)
    net.blobs["x"].data, net.blobs["cont"].data = torch.randn(3, 2, 5), torch.ones(3, 2)
    net.forward()
    with pytest.raises(LayerError, match="sequence indicators"):
        net.backward()
    unit = _net("layer { name: 'data' type: 'Input' top: 'c' top: 'x' top: 'k' input_param { shape { dim: 1 dim: 2 "
                "dim: 3 } shape { dim: 1 dim: 2 dim: 12 } shape { dim: 1 dim: 2 } } }\n"
                "layer { name: 'u' type: 'LSTMUnit' bottom: 'c' bottom: 'x' bottom: 'k' top: 'c1' top: 'h1' }\n")
    unit.forward()
    layer = unit.layer("u")
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(1)
    bottoms = [unit.blobs[b].data for b in ("c", "x", "k")]
    tops = [unit.blobs["c1"].data, unit.blobs["h1"].data]
    with pytest.raises(LayerError, match="sequence indicators"):
        layer.backward(tops, [torch.ones(1, 2, 3)] * 2, [True, True, True], bottoms)


def test_shape_errors():
    with pytest.raises(NetError, match="4 x 3"):
        _net("layer { name: 'data' type: 'Input' top: 'c' top: 'x' top: 'k' input_param { shape { dim: 1 dim: 2 "
             "dim: 3 } shape { dim: 1 dim: 2 dim: 11 } shape { dim: 1 dim: 2 } } }\n"
             "layer { name: 'u' type: 'LSTMUnit' bottom: 'c' bottom: 'x' bottom: 'k' top: 'c1' top: 'h1' }\n")
    with pytest.raises(NetError, match="exactly 2 axes"):
        _net("layer { name: 'data' type: 'Input' top: 'x' top: 'cont' input_param { shape { dim: 3 dim: 2 dim: 5 } "
             "shape { dim: 3 dim: 2 dim: 1 } } }\n"
             "layer { name: 'rec' type: 'LSTM' bottom: 'x' bottom: 'cont' top: 'out' recurrent_param { "
             "num_output: 4 } }\n")
    with pytest.raises(NetError, match="num_output must be positive"):
        _net("layer { name: 'data' type: 'Input' top: 'x' top: 'cont' input_param { shape { dim: 3 dim: 2 dim: 5 } "
             "shape { dim: 3 dim: 2 } } }\n"
             "layer { name: 'rec' type: 'RNN' bottom: 'x' bottom: 'cont' top: 'out' }\n")


def test_cuda_blobs_are_refused_with_the_layer_name():
    from types import SimpleNamespace

    from replicate.layers.sigmoid import require_cpu
    net = _recurrent_net("LSTM")
    fake_cuda = SimpleNamespace(device=torch.device("cuda", 0))
    with pytest.raises(LayerError, match=r"layer 'rec' \(LSTM\): CPU only"):
        require_cpu(net.layer("rec"), [fake_cuda])
    x = torch.zeros(1, 2, 3)
    if torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            torch.ops.replicate.lstm_unit_forward(x.cuda(), torch.zeros(1, 2, 12).cuda(), torch.ones(1, 2).cuda())


def test_lstm_unit_float64_runs():
    c = torch.randn(1, 2, 3, dtype=torch.float64)
    x = torch.randn(1, 2, 12, dtype=torch.float64)
    k = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    c1, h1 = torch.ops.replicate.lstm_unit_forward(c, x, k)
    i, f, o, g = x[..., :3].sigmoid(), x[..., 3:6].sigmoid() * k[..., None], x[..., 6:9].sigmoid(), x[..., 9:].tanh()
    torch.testing.assert_close(c1, f * c + i * g, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(h1, o * (f * c + i * g).tanh(), rtol=1e-12, atol=1e-14)
