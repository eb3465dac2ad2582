"""GRU4Rec: each mechanism the papers specify, checked with numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from session_builders import make_sessions

from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import evaluate_next_event
from nextbest.models.base import parse_config
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig, losses
from nextbest.models.gru4rec.batching import plan
from nextbest.models.gru4rec.network import GRU4RecNet
from nextbest.models.gru4rec.optimizer import IndexedAdagradM
from nextbest.models.gru4rec.sampler import NegativeSampler
from nextbest.models.gru4rec.training import Trainer, _carry


def random_sessions(n_sessions: int, n_items: int, seed: int) -> Sessions:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=n_sessions)
    return make_sessions([list(rng.integers(0, n_items, size=k)) for k in lengths], n_items)


SMALL = dict(layers=(8,), batch_size=4, n_sample=6, n_epochs=1)


# -- session-parallel mini-batches ------------------------------------------------------------
def test_walk_feeds_every_event_once_in_order_and_shrinks_at_the_end() -> None:
    sessions = random_sessions(40, 30, seed=1)
    walk = plan(sessions, batch_size=5)
    inputs = [e for s in range(sessions.n_sessions) for e in range(*sessions.offsets[s : s + 2])]
    last = set(sessions.offsets[1:] - 1)
    expected = sorted(e for e in inputs if e not in last)  # every event with a next one
    assert sorted(walk.positions.tolist()) == expected  # each exactly once, none dropped
    # Replay the slots: a slot's inputs are consecutive events of one session at a time.
    slots = [[int(p)] for p in walk.positions[: walk.offsets[1]]]
    widths = np.diff(walk.offsets)
    for b in range(1, walk.n_batches):
        chunk = walk.positions[walk.offsets[b] : walk.offsets[b + 1]]
        keep, resets = walk.keeps[b], walk.resets[b]
        if keep is not None:
            slots = [slots[k] for k in keep]
        reset = set() if resets is None else set(resets.tolist())
        assert len(chunk) == len(slots)
        for row, position in enumerate(chunk):
            starts_session = position in set(sessions.offsets[:-1].tolist())
            assert starts_session == (row in reset)
            if not starts_session:
                assert position == slots[row][-1] + 1  # the same session, the next event
            slots[row].append(int(position))
    assert widths[0] == 5 and widths[-1] < 5  # full at first, shrinking at the end
    assert np.all(np.diff(widths[np.argmax(widths < 5) :]) <= 0)  # never grows back
    # Sessions are handed out in their stored (time) order.
    firsts = [p for p in walk.positions.tolist() if p in set(sessions.offsets[:-1].tolist())]
    assert firsts == sorted(firsts)


def test_state_of_a_new_session_equals_a_fresh_state() -> None:
    train = random_sessions(30, 20, seed=2)
    config = GRU4RecConfig(**SMALL, dropout_p_hidden=0.3)  # type: ignore[arg-type]
    net = GRU4RecNet(train.n_items, config)
    walk = plan(train, config.batch_size)
    trainer = Trainer(net, config, train.item_support(), walk.n_batches)
    starts = set(train.offsets[:-1].tolist())
    hidden = net.initial_hidden(int(walk.offsets[1]))
    checked = 0
    for b, batch in enumerate(walk.batches(train.items)):
        hidden = _carry(hidden, batch)
        positions = walk.positions[walk.offsets[b] : walk.offsets[b + 1]]
        for row, position in enumerate(positions):
            if position in starts:
                assert torch.equal(hidden[0][row], torch.zeros(8))
                checked += 1
            else:
                assert hidden[0][row].abs().sum() > 0  # a running session keeps its state
        _, hidden = trainer.step(batch.inputs, batch.targets, hidden)
    assert checked == int((train.lengths >= 2).sum())


# -- losses -------------------------------------------------------------------------------------
SCORES = torch.tensor([[2.0, 0.5, -1.0, 0.3], [0.1, 1.5, 0.7, -0.4]])  # 2 targets + 2 samples


def test_cross_entropy_with_logq_matches_hand_computation() -> None:
    log_pop = torch.log(torch.tensor([0.4, 0.1, 0.2, 0.3]))
    logq = 0.7
    expected = 0.0
    for i in range(2):
        z = [SCORES[i, j].item() - logq * log_pop[j].item() for j in range(4)]
        p = math.exp(z[i]) / sum(math.exp(v) for v in z)
        expected += -math.log(p + 1e-24)
    got = losses.cross_entropy(SCORES, logq * log_pop)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert losses.cross_entropy(SCORES, None).item() != pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("logq", [0.0, 1.0])
@pytest.mark.parametrize("shape", [(6, 15), (40, 300)])
def test_fused_cross_entropy_equals_the_formula_in_value_and_gradient(
    logq: float, shape: tuple[int, int]
) -> None:
    generator = torch.Generator().manual_seed(4)
    scores = (torch.randn(*shape, generator=generator) * 3).requires_grad_()
    log_q = logq * torch.log(torch.rand(shape[1], generator=generator) + 0.01) if logq else None
    reference = losses.cross_entropy(scores, log_q)
    (expected,) = torch.autograd.grad(reference, scores)
    fused = losses.fused_cross_entropy(scores, log_q)
    (got,) = torch.autograd.grad(fused, scores)
    assert fused.item() == pytest.approx(reference.item(), rel=1e-5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    doubled = losses.fused_cross_entropy(scores, log_q) * 2.0  # an outer factor reaches it
    torch.testing.assert_close(torch.autograd.grad(doubled, scores)[0], 2.0 * expected)


def test_logq_corrects_each_column_by_the_distribution_it_was_drawn_from() -> None:
    support = np.array([1, 4, 9])
    config = GRU4RecConfig(layers=(4,), logq=0.5, sample_alpha=0.5, n_sample=2)
    trainer = Trainer(GRU4RecNet(3, config), config, support, n_batches=1)
    assert trainer.log_q is not None
    in_batch, sampled = trainer.log_q
    assert np.allclose(in_batch.numpy(), 0.5 * np.log([1.0, 4.0, 9.0]))  # the data: support
    assert np.allclose(sampled.numpy(), 0.5 * np.log([1.0, 2.0, 3.0]))  # support ** 0.5
    bpr = GRU4RecConfig(layers=(4,), loss="bpr-max", logq=1.0)
    assert Trainer(GRU4RecNet(3, bpr), bpr, support, n_batches=1).log_q is None


def test_bpr_max_with_bpreg_matches_hand_computation() -> None:
    bpreg = 0.9
    expected = 0.0
    for i in range(2):
        r = SCORES[i].tolist()
        negatives = [j for j in range(4) if j != i]  # the target is masked
        norm = sum(math.exp(r[j]) for j in negatives)
        s = {j: math.exp(r[j]) / norm for j in negatives}
        above = sum(s[j] / (1.0 + math.exp(-(r[i] - r[j]))) for j in negatives)
        expected += -math.log(above + 1e-24) + bpreg * sum(s[j] * r[j] ** 2 for j in negatives)
    assert losses.bpr_max(SCORES, bpreg).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("kind", "alpha"),
    [("elu", 1.0), ("elu", 0.5), ("linear", 0.0), ("relu", 0.0), ("tanh", 0.0)],
)  # the compiled kernel (ELU, linear) and the PyTorch form (the others)
@pytest.mark.parametrize("shape", [(6, 15), (40, 300)])
def test_fused_bpr_max_equals_the_formula_in_value_and_gradient(
    kind: str, alpha: float, shape: tuple[int, int]
) -> None:
    generator = torch.Generator().manual_seed(3)
    logits = (torch.randn(*shape, generator=generator) * 2).requires_grad_()
    reference = losses.bpr_max(losses.activate(logits, kind, alpha), 0.9)
    (expected,) = torch.autograd.grad(reference, logits)
    fused = losses.fused_bpr_max(logits, 0.9, kind, alpha)
    (got,) = torch.autograd.grad(fused, logits)
    assert fused.item() == pytest.approx(reference.item(), rel=1e-6)
    assert torch.allclose(got, expected, atol=1e-5)
    assert float(expected.diagonal().abs().sum()) > 0  # the target's own gradient is covered


def test_top1_max_matches_hand_computation() -> None:
    expected = 0.0
    for i in range(2):
        r = SCORES[i].tolist()
        negatives = [j for j in range(4) if j != i]
        norm = sum(math.exp(r[j]) for j in negatives)
        for j in negatives:
            sig = 1.0 / (1.0 + math.exp(-(r[j] - r[i]))) + 1.0 / (1.0 + math.exp(-(r[j] ** 2)))
            expected += math.exp(r[j]) / norm * sig
    assert losses.top1_max(SCORES).item() == pytest.approx(expected, rel=1e-6)


def test_elu_final_activation_is_the_configured_one() -> None:
    config = GRU4RecConfig(loss="bpr-max", elu_param=0.5)
    assert config.activation == ("elu", 0.5)
    assert GRU4RecConfig(loss="bpr-max", final_act="elu-1").activation == ("elu", 1.0)
    assert GRU4RecConfig(loss="bpr-max", elu_param=0.0).activation == ("linear", 0.0)
    out = losses.activate(torch.tensor([-2.0, 3.0]), "elu", 0.5)
    assert out.tolist() == pytest.approx([0.5 * (math.exp(-2.0) - 1.0), 3.0])


# -- optimiser ----------------------------------------------------------------------------------
def test_indexed_adagrad_momentum_touches_only_used_rows() -> None:
    table = torch.nn.Parameter(torch.randn(6, 3))
    opt = IndexedAdagradM([], [table], learning_rate=0.1, momentum=0.5)
    before = table.detach().clone()
    opt.accumulator(table)[:] = 0.25  # earlier history on every row
    opt.velocity(table)[:] = 0.01
    index = torch.tensor([4, 1, 4])  # row 4 used twice: one update with the summed gradient
    grad = torch.tensor([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5], [1.0, -1.0, 0.0]])
    opt.step_rows(table, index, grad)
    acc, vel = opt.accumulator(table), opt.velocity(table)
    untouched = [0, 2, 3, 5]
    assert torch.equal(table.detach()[untouched], before[untouched])
    assert torch.all(acc[untouched] == 0.25) and torch.all(vel[untouched] == 0.01)
    g4 = torch.tensor([2.0, -1.0, 2.0])
    acc4 = 0.25 + g4**2
    vel4 = 0.5 * 0.01 - 0.1 * g4 / torch.sqrt(acc4 + 1e-6)
    assert torch.allclose(acc[4], acc4) and torch.allclose(vel[4], vel4)
    assert torch.allclose(table.detach()[4], before[4] + vel4)


@pytest.mark.parametrize("momentum", [0.0, 0.4])
@pytest.mark.parametrize("width", [(5,), ()])  # an item matrix and a bias vector
def test_compiled_row_update_equals_the_pytorch_definition(
    momentum: float, width: tuple[int, ...]
) -> None:
    generator = torch.Generator().manual_seed(3)
    compiled = torch.nn.Parameter(torch.randn(40, *width, generator=generator))
    defined = torch.nn.Parameter(compiled.detach().clone())
    fast = IndexedAdagradM([], [compiled], learning_rate=0.2, momentum=momentum)
    plain = IndexedAdagradM([], [defined], learning_rate=0.2, momentum=momentum)
    for _ in range(4):  # repeats within a step, rows resting between steps
        index = torch.randint(0, 30, (50,), generator=generator)
        grad = torch.randn(50, *width, generator=generator)
        fast.step_rows(compiled, index, [grad[:20], grad[20:]])  # given in two parts
        plain.step_rows_reference(defined, index, grad)
    torch.testing.assert_close(compiled.detach(), defined.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.accumulator(compiled), plain.accumulator(defined))
    if momentum:
        torch.testing.assert_close(fast.velocity(compiled), plain.velocity(defined))
    assert torch.equal(compiled.detach()[30:], defined.detach()[30:])  # never used
    assert torch.all(fast.table_slot[id(compiled)] == -1)  # the scratch map is left clear


def test_dense_adagrad_momentum_step() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = IndexedAdagradM([weight], [], learning_rate=0.5, momentum=0.2)
    for _ in range(2):
        weight.grad = torch.tensor([0.5, 1.0])
        opt.step_dense()
    acc1, acc2 = torch.tensor([0.25, 1.0]), torch.tensor([0.5, 2.0])
    v1 = -0.5 * torch.tensor([0.5, 1.0]) / torch.sqrt(acc1 + 1e-6)
    v2 = 0.2 * v1 - 0.5 * torch.tensor([0.5, 1.0]) / torch.sqrt(acc2 + 1e-6)
    assert torch.allclose(weight.detach(), torch.tensor([1.0, -2.0]) + v1 + v2)
    assert weight.grad is None
    double = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))  # not compiled
    opt = IndexedAdagradM([double], [], learning_rate=0.5, momentum=0.2)
    for _ in range(2):
        double.grad = torch.tensor([0.5, 1.0], dtype=torch.float64)
        opt.step_dense()
    assert torch.allclose(double.detach().float(), weight.detach())


# -- negative sampling --------------------------------------------------------------------------
def test_negative_samples_follow_support_to_the_alpha() -> None:
    support = np.array([1, 4, 9, 16, 100, 0])
    alpha = 0.5
    sampler = NegativeSampler(
        support,
        n_sample=1000,
        alpha=alpha,
        generator=torch.Generator().manual_seed(0),
        store_size=50_000,
    )
    draws = torch.cat([sampler() for _ in range(120)])  # 120k draws, 2+ refills
    assert sampler.refills >= 3
    counts = np.bincount(draws.numpy(), minlength=6)
    assert counts[5] == 0  # no support, never drawn
    expected = support[:5] ** alpha / (support[:5] ** alpha).sum() * len(draws)
    chi2 = stats.chisquare(counts[:5], expected)
    assert chi2.pvalue > 1e-3
    uniform = NegativeSampler(support[:5], 5000, 0.0, torch.Generator().manual_seed(1))()
    assert np.bincount(uniform.numpy(), minlength=5).min() > 900  # alpha 0: uniform


# -- inference, persistence ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"constrained_embedding": False, "embedding": 5},
        {"constrained_embedding": False, "layers": (8, 6)},
        {"loss": "bpr-max", "dropout_p_embed": 0.2, "dropout_p_hidden": 0.2},
    ],
)
def test_step_and_score_equal_the_training_forward_pass(extra: dict[str, object]) -> None:
    train = random_sessions(60, 25, seed=3)
    config = GRU4RecConfig(**{**SMALL, **extra})  # type: ignore[arg-type]
    model = GRU4Rec(config).fit(train)
    assert model.net is not None
    trainer = Trainer(model.net, config, train.item_support(), 1)
    rng = np.random.default_rng(0)
    state = model.initial_state(3)
    hidden = model.net.initial_hidden(3)
    cols = torch.tensor([3, 7, 7, 0, 24, 11])
    for _ in range(3):  # a few events, so the carried state matters
        items = rng.integers(0, 25, size=3)
        state = model.step(state, items, np.zeros(3))
        with torch.no_grad():
            expected, hidden, _ = trainer.forward(torch.from_numpy(items), cols, hidden, False)
        assert np.allclose(model.score(state, cols.numpy()), expected.numpy(), atol=1e-6)
        full = model.score(state)
        assert np.allclose(full[:, cols.numpy()], expected.numpy(), atol=1e-6)


def test_save_load_round_trips_scores_exactly(tmp_path: Path) -> None:
    train = random_sessions(50, 20, seed=4)
    model = GRU4Rec(GRU4RecConfig(**{**SMALL, "layers": (6, 5)})).fit(train)  # type: ignore[arg-type]
    model.save(tmp_path / "m")
    loaded = GRU4Rec.load(tmp_path / "m")
    assert loaded.config == model.config
    items = np.array([1, 5, 19])
    a = model.step(model.initial_state(3), items, np.zeros(3))
    b = loaded.step(loaded.initial_state(3), items, np.zeros(3))
    assert torch.equal(a, b)
    assert np.array_equal(model.score(a), loaded.score(b))
    top, _ = loaded.recommend(b, 4, exclude=[np.array([int(np.argmax(loaded.score(b)[0]))])] * 3)
    assert top.shape == (3, 4) and int(np.argmax(loaded.score(b)[0])) not in top[0]


def test_a_model_saved_before_hidden_biases_loads_and_scores_as_it_did(tmp_path: Path) -> None:
    """Models saved before GRU layers had `bias_hidden` (zeros there compute the same)."""
    train = random_sessions(50, 20, seed=4)
    model = GRU4Rec(GRU4RecConfig(**{**SMALL, "layers": (6, 5)})).fit(train)  # type: ignore[arg-type]
    with torch.no_grad():
        for layer in model._fitted().layers:
            layer.bias_hidden.zero_()  # type: ignore[operator]
    arrays = model.arrays()
    old = {k: v for k, v in arrays.items() if not k.endswith("bias_hidden")}
    assert len(old) == len(arrays) - 2  # one per layer
    model.save(tmp_path / "m")
    loaded = GRU4Rec.load(tmp_path / "m")
    loaded.restore(old)  # the arrays as a model saved before bias_hidden holds them
    items = np.array([1, 5, 19])
    a = model.step(model.initial_state(3), items, np.zeros(3))
    b = loaded.step(loaded.initial_state(3), items, np.zeros(3))
    assert torch.equal(a, b)


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("loss", "bpr"),
        ("layers", ()),
        ("layers", (100, 0)),
        ("batch_size", 0),
        ("dropout_p_embed", 1.0),
        ("dropout_p_hidden", -0.1),
        ("learning_rate", 0.0),
        ("momentum", 1.0),
        ("n_sample", -1),
        ("sample_alpha", -0.5),
        ("bpreg", -1.0),
        ("logq", -1.0),
        ("batch_loss", "average"),
        ("elu_param", -1.0),
        ("final_act", "softplus"),
        ("n_epochs", 0),
        ("embedding", -3),
        ("embedding", 64),  # with the default constrained_embedding=True
    ],
)
def test_bad_config_values_raise_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        GRU4RecConfig(**{field: value})  # type: ignore[arg-type]


def test_parameters_parse_from_the_command_line() -> None:
    config = parse_config(
        GRU4RecConfig,
        {
            "layers": "100,100",
            "loss": "bpr-max",
            "constrained_embedding": "False",
            "embedding": "64",
            "final_act": "elu-1",
            "logq": "1",
            "batch_loss": "sum",
        },
    )
    assert config.batch_loss == "sum"
    assert config.layers == (100, 100) and config.embedding == 64 and config.logq == 1.0
    assert config.activation == ("elu", 1.0)
    assert parse_config(GRU4RecConfig, {"layers": "100"}).layers == (100,)
    with pytest.raises(ValueError, match="batch_size"):
        parse_config(GRU4RecConfig, {"batch_size": "big"})


# -- learning -----------------------------------------------------------------------------------
def planted(n_sessions: int, seed: int) -> list[list[int]]:
    """Sessions that need memory: the first item (one of 10 contexts) picks which successor
    map the rest of the session follows (90% of steps; the others are random items)."""
    rng = np.random.default_rng(seed)
    maps = np.random.default_rng(99).permuted(np.tile(np.arange(10, 60), (10, 1)), axis=1)
    out = []
    for _ in range(n_sessions):
        context, item = int(rng.integers(10)), int(rng.integers(10, 60))
        session = [context, item]
        for _ in range(int(rng.integers(2, 8))):
            item = int(maps[context, item - 10]) if rng.random() < 0.9 else int(rng.integers(60))
            session.append(item)
        out.append(session)
    return out


@pytest.mark.parametrize("loss", ["cross-entropy", "bpr-max"])
def test_a_planted_sequence_is_learned(loss: str) -> None:
    train = make_sessions(planted(3000, seed=5), 60)
    test = make_sessions(planted(300, seed=6), 60)
    config = GRU4RecConfig(
        loss=loss,  # type: ignore[arg-type]
        layers=(48,),
        batch_size=16,
        n_sample=16,
        n_epochs=3,
        learning_rate=0.1,
        logq=1.0 if loss == "cross-entropy" else 0.0,
        momentum=0.1,
    )
    model = GRU4Rec(config).fit(train)
    result = evaluate_next_event(model, test)
    later = result.ranks[result.positions >= 2]  # targets the context decides
    # Only the remembered context tells which of 10 successors comes next. Measured: 0.78
    # (both losses); the same net with its state zeroed every step (memoryless) 0.52;
    # a random ranking 0.08.
    assert float(np.mean(later <= 5)) > 0.7


@pytest.mark.parametrize(
    "extra",
    [
        {},  # shared input table
        {"constrained_embedding": False, "embedding": 5},  # separate embedding
        {"constrained_embedding": False, "embedding": 0},  # one-hot input
        {"constrained_embedding": False, "layers": (8, 6)},  # two layers
    ],
)
def test_one_session_steps_as_in_a_batch(extra: dict[str, object]) -> None:
    """Serving steps one session at a time in numpy (`one_step`); its state is the batch
    step's, within float32 rounding, event after event, and follows replaced weights."""
    train = random_sessions(60, 25, seed=5)
    model = GRU4Rec(GRU4RecConfig(**{**SMALL, **extra})).fit(train)  # type: ignore[arg-type]
    assert model.net is not None
    rng = np.random.default_rng(1)
    alone, batch = model.initial_state(1), model.initial_state(2)
    for _ in range(6):
        item = int(rng.integers(0, 25))
        alone = model.step(alone, np.array([item]), np.zeros(1))
        batch = model.step(batch, np.array([item, item]), np.zeros(2))
        assert alone.shape == (1, sum(model.config.layers)) and alone.dtype == torch.float32
        torch.testing.assert_close(alone[0], batch[0], rtol=0, atol=1e-6)
    with torch.no_grad():
        model.net.input_table.data = model.net.input_table.data * 2.0  # new storage
    alone = model.step(alone, np.array([3]), np.zeros(1))
    batch = model.step(batch, np.array([3, 3]), np.zeros(2))
    torch.testing.assert_close(alone[0], batch[0], rtol=0, atol=1e-6)
