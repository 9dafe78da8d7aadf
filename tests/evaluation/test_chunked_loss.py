"""The chunked next-token loss equals the standard full-logits cross-entropy (loss and gradients, 1e-5 in fp32) for
every method, is what the causal-lm trainer computes, gives the evaluation loss exactly with token-budget batches,
and never holds the full logits."""

from __future__ import annotations

import pytest
import torch

from ftkit.evaluation.chunked_loss import chunked_head, install, next_token_scores, unsupported
from ftkit.evaluation.metrics import causal_lm_loss, token_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METHOD_OPTIONS = {
    "lora": {"r": 4, "dropout": 0.0},
    "dora": {"r": 4, "dropout": 0.0},
    "ia3": {},
    "full": {},
    "freeze": {"layers": 1, "modules": ["lm_head"]},
    "prompt": {"num_virtual_tokens": 4},
    "prefix": {"num_virtual_tokens": 4, "init": "random"},
    "qlora": {"r": 4, "dropout": 0.0},
}
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def _model(directory, method: str, tied: bool = False):
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftkit.methods.catalog import get_method

    torch.manual_seed(0)
    if tied:  # the embedding is also the LM head: its gradient sums both uses
        model = AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(directory, tie_word_embeddings=True)
        )
        assert model.lm_head.weight is model.model.embed_tokens.weight
    chosen = get_method(method)
    options = chosen.parse_options(METHOD_OPTIONS[method])
    if not tied:  # qlora: 4-bit linear layers, the LM head kept in full precision
        model = AutoModelForCausalLM.from_pretrained(directory, **chosen.model_load_kwargs(options, "cpu"))
    model = chosen.prepare(model, options, "causal-lm")
    for name, parameter in model.named_parameters():
        # adapters start as the identity; move them so that every gradient means something
        if parameter.requires_grad and ("lora_B" in name or "ia3_l" in name):
            with torch.no_grad():
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def _model_dir(request, method: str):
    """The tiny Llama; for qlora the one whose widths fit bitsandbytes' 4-bit blocks."""
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
        return request.getfixturevalue("wide_model_dir")
    return request.getfixturevalue("tiny_model_dir")


def _batch(vocab: int, seed: int = 1):
    """Right-padded rows of different lengths; the prompt part of each row (and its padding) is -100."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [11, 7, 9]
    ids = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=generator)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        labels[row, 3:n] = ids[row, 3:n]
    return ids, mask, labels


def _reference_loss(model, ids, mask, labels):
    """The standard loss: full logits of the model's own forward, shifted, torch's cross-entropy."""
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, -ids.shape[1] :]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def _gradients(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize(
    ("method", "tied"), [*((name, False) for name in METHOD_OPTIONS), ("full", True), ("freeze", True)]
)
def test_loss_and_gradients_equal_full_logits_cross_entropy(request, method, tied):
    model = _model(_model_dir(request, method), method, tied)
    model.train()
    vocab = model.get_output_embeddings().weight.shape[0]
    ids, mask, labels = _batch(vocab)
    reference = _reference_loss(model, ids, mask, labels)
    reference.backward()
    expected = _gradients(model)

    assert install(model, chunk_bytes=4 * vocab * 5) is None  # 5 tokens per chunk: 5 chunks for 21 tokens
    output = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    output.loss.backward()
    got = _gradients(model)

    torch.testing.assert_close(output.loss, reference, **TOLERANCE)
    assert expected.keys() == got.keys() and expected, "the same parameters get a gradient"
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], **TOLERANCE, msg=name)
    if method in ("full", "freeze"):
        assert any("lm_head" in name or "embed_tokens" in name for name in got)
    assert int(output.label_mask.sum()) == int((labels[:, 1:] != -100).sum())


def test_scores_and_gradients_with_a_bias_under_several_chunks():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(23, 8, generator=generator, requires_grad=True)
    weight = torch.randn(50, 8, generator=generator, requires_grad=True)
    bias = torch.randn(50, generator=generator, requires_grad=True)
    targets = torch.randint(0, 50, (23,), generator=generator)
    upstream = torch.rand(23, generator=generator)

    log_probs, entropy, top1 = next_token_scores(hidden, weight, bias, targets, chunk_bytes=4 * 50 * 4)
    (log_probs * upstream).sum().backward()
    got = [t.grad.clone() for t in (hidden, weight, bias)]
    for tensor in (hidden, weight, bias):
        tensor.grad = None

    log_softmax = torch.log_softmax(hidden @ weight.t() + bias, -1)
    (log_softmax.gather(1, targets[:, None]).squeeze(1) * upstream).sum().backward()
    torch.testing.assert_close(log_probs, log_softmax.gather(1, targets[:, None]).squeeze(1), **TOLERANCE)
    torch.testing.assert_close(entropy, -(log_softmax.exp() * log_softmax).sum(-1), **TOLERANCE)
    assert torch.equal(top1, log_softmax.argmax(-1) == targets)
    for gradient, tensor in zip(got, (hidden, weight, bias), strict=True):
        torch.testing.assert_close(gradient, tensor.grad, **TOLERANCE)


def test_bf16_autocast_projects_in_bf16_like_the_standard_path(tiny_model_dir):
    model = _model(tiny_model_dir, "lora")
    ids, mask, labels = _batch(model.get_output_embeddings().weight.shape[0])
    install(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = _reference_loss(model, ids, mask, labels)
        output = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    assert torch.isfinite(output.loss)
    torch.testing.assert_close(output.loss, reference, atol=1e-3, rtol=1e-3)


def test_a_batch_without_trained_tokens_is_a_finite_zero(tiny_model_dir):
    model = _model(tiny_model_dir, "lora")
    ids, mask, _ = _batch(model.get_output_embeddings().weight.shape[0])
    install(model)
    output = model(input_ids=ids, attention_mask=mask, labels=torch.full_like(ids, -100), fused_lm_head=True)
    output.loss.backward()
    assert output.loss.item() == 0.0 and not output.label_mask.any()


def test_an_adapter_on_the_lm_head_keeps_the_models_own_path(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["lm_head"])
    )
    assert "not a plain Linear" in unsupported(model.get_base_model())
    assert install(model) is not None and "forward" not in vars(model.get_base_model())
    rows = [{"input_ids": [5, 6, 7, 8], "labels": [-100, 6, 7, 8]}]
    with chunked_head(model) as applies:
        assert not applies
    ids = torch.tensor([rows[0]["input_ids"]])
    with torch.no_grad():
        expected = _reference_loss(model, ids, torch.ones_like(ids), torch.tensor([rows[0]["labels"]]))
    assert causal_lm_loss(model, rows, 3)["loss"] == pytest.approx(expected.item(), abs=1e-5)


def _eval_rows(vocab: int, count: int = 13) -> list[dict]:
    generator = torch.Generator().manual_seed(2)
    rows = []
    for index in range(count):
        n = 5 + (index * 7) % 17
        ids = torch.randint(4, vocab, (n,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    return rows


def _reference_eval_loss(model, rows) -> float:
    """Each row alone through the standard forward: summed cross-entropy over its labelled tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            loss = _reference_loss(model, ids, torch.ones_like(ids), labels)
            tokens = int((labels[:, 1:] != -100).sum())
            total, count = total + loss.item() * tokens, count + tokens
    return total / count


@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
def test_evaluation_loss_equals_full_logits_with_token_budget_batches(request, method):
    model = _model(_model_dir(request, method), method)
    rows = _eval_rows(model.get_output_embeddings().weight.shape[0])
    batches = token_batches(rows, 64)
    assert len(batches) > 3 and all(len(b) * len(b[0]["input_ids"]) <= 64 for b in batches if len(b) > 1)
    assert sorted(map(id, sum(batches, []))) == sorted(map(id, rows))

    scores = causal_lm_loss(model, rows, pad_token_id=3, max_tokens=64)
    assert scores["loss"] == pytest.approx(_reference_eval_loss(model, rows), abs=1e-5)
    assert scores["tokens"] == sum(len(row["input_ids"]) - 3 for row in rows)
    assert "forward" not in vars(model.get_base_model() if hasattr(model, "get_base_model") else model)


@pytest.mark.parametrize("padding_free", [True, False])
def test_the_trainer_computes_the_chunked_loss(tmp_path, tiny_model_dir, padding_free):
    from transformers import AutoTokenizer

    from ftkit.train.callbacks import ProgressTracker, SilentReporter, trainer_callback
    from ftkit.train.hardware import TrainingPlan
    from ftkit.train.trainer import build_trainer
    from tests.train.test_trainer import TRAINING

    model = _model(tiny_model_dir, "lora")
    rows = _eval_rows(model.get_output_embeddings().weight.shape[0], count=4)
    plan = TrainingPlan("cpu", "fp32", gradient_checkpointing=False, padding_free=padding_free, notes=[])
    tracker = trainer_callback(ProgressTracker, SilentReporter())
    trainer = build_trainer(
        model, AutoTokenizer.from_pretrained(tiny_model_dir), rows, {"training": TRAINING}, plan, [tracker],
        task="causal-lm", output_dir=tmp_path,
    )  # fmt: skip
    forward = trainer.model.get_base_model().forward
    assert forward.__func__.__code__.co_filename.endswith("chunked_loss.py")

    inputs = trainer.data_collator(rows)
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    batch = {key: inputs[key] for key in ("input_ids", "attention_mask", "position_ids") if key in inputs}
    assert ("position_ids" in batch) is padding_free
    logits = trainer.model(**batch).logits
    shifted, targets = logits[:, :-1].reshape(-1, logits.shape[-1]), inputs["labels"][:, 1:].reshape(-1)
    reference = torch.nn.functional.cross_entropy(shifted, targets, ignore_index=-100)
    torch.testing.assert_close(loss, reference, **TOLERANCE)

    trained = targets != -100
    log_p = torch.log_softmax(shifted[trained], -1)
    entropy = -(log_p.exp() * log_p).sum(-1).mean().item()
    accuracy = (shifted[trained].argmax(-1) == targets[trained]).float().mean().item()
    assert trainer._metrics["train"]["entropy"][-1] == pytest.approx(entropy, abs=1e-5)
    assert trainer._metrics["train"]["mean_token_accuracy"][-1] == pytest.approx(accuracy, abs=1e-6)


def _peak_rss_growth_mb(work) -> float:
    """Peak resident memory during `work()` above the resident memory before it (Linux: VmHWM reset by
    /proc/self/clear_refs)."""

    def status_kb(key: str) -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = status_kb("VmRSS")
    work()
    return (status_kb("VmHWM") - before) / 1024


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_full_logits_are_never_held():
    tokens, width, vocab = 1024, 64, 32768
    full_logits_mb = tokens * vocab * 4 / 2**20  # 128 MB
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=generator, requires_grad=True)
    weight = torch.randn(vocab, width, generator=generator, requires_grad=True)
    targets = torch.randint(0, vocab, (tokens,), generator=generator)

    def chunked():
        log_probs, _, _ = next_token_scores(hidden, weight, None, targets, chunk_bytes=4 * 2**20)
        (-log_probs.sum()).backward()

    def full():
        torch.nn.functional.cross_entropy(hidden @ weight.t(), targets, reduction="sum").backward()

    chunked()  # the allocator's first-use overhead is not the loss's
    peaks = {}
    for name, work in (("chunked", chunked), ("full", full)):
        hidden.grad = weight.grad = None
        peaks[name] = _peak_rss_growth_mb(work)
    # chunked: the weight's gradient (8 MB) and a few 4 MB chunks; full: the logits and their gradient
    assert peaks["chunked"] < full_logits_mb / 2 < full_logits_mb < peaks["full"], peaks


def test_a_run_the_chunked_loss_does_not_apply_to_says_which_loss_it_trains_with(
    tmp_path, tiny_model_dir, chat_data
):
    """A config that scales the logits (Granite's `logits_scaling`): the run keeps TRL's fused head and says why."""
    import json
    import shutil

    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run
    from tests.conftest import write_recipe

    model_dir = tmp_path / "scaled"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "logits_scaling": 2.0}))
    recipe = write_recipe(tmp_path / "r.yaml", model_dir, chat_data["train"], chat_data["eval"])
    reporter = SilentReporter()
    loaded = load_recipe(recipe, ["training.max_steps=1", "evaluation.compare_base=false"])
    result = execute_run(loaded, "run-1", "scaled", reporter)
    assert result.status == "succeeded", result.error
    notes = [event["message"] for event in reporter.events if event["kind"] == "note"]
    assert any("chunked loss does not apply: its config transforms the logits" in note for note in notes), (
        notes
    )
