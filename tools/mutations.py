"""Plant realistic bugs one at a time and check that the tests catch them (mutation testing by hand).

    python -m tools.mutations                 # every mutation: a table of caught / survived
    python -m tools.mutations --list          # the mutations and the tests each one runs
    python -m tools.mutations --only keras-maml-ignores-first-order tf-keras-ignore-decay

Each mutation is one small edit that a contributor could plausibly make (a flag not passed on, a
schedule ignored, evaluation in training mode, labels shuffled apart from their images). The
working tree is copied to a scratch folder (tracked and untracked files that git does not ignore),
the edit is made there, and the tests aimed at it run there with ``pytest -x``; the real tree is
never touched. A mutation is *caught* when those tests fail, *survived* when they pass. Before the
mutations, the same tests run on the unmutated copy (``--no-baseline`` skips that): a baseline that
fails makes every "caught" meaningless.

Not part of the test suite (it runs the same tests many times over); run it after changing a test
that a mutation targets, and add a mutation for every bug the tests are meant to see.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.plotting import FRAMEWORK_NAMES

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # the file, relative to the repository root
    old: str  # text that occurs exactly once in it
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions
    bug: str  # what a reader would see go wrong
    more: tuple[tuple[str, str], ...] = ()  # further (old, new) edits in the same file, for a consistent bug

    def edits(self) -> tuple[tuple[str, str], ...]:
        return ((self.old, self.new), *self.more)


# The line where each TensorFlow / Keras episodic learner builds Adam on its step-decay schedule:
# the "ignores decay" bugs of the statistical tests replace decay_every there by None.
SCHEDULED_ADAM = {
    "tf": "        self.optimizer = Adam(lr_schedule(learning_rate, decay_every, decay), epsilon=1e-8)",
    "keras": "        model.compile(optimizer=Adam(lr_schedule(learning_rate, decay_every, decay), epsilon=1e-8))"}


def ignores_decay(framework: str, name: str, tests: tuple[str, ...], what: str) -> Mutation:
    """``framework``'s episodic learner at a constant rate whatever --decay-every says."""
    old = SCHEDULED_ADAM[framework]
    return Mutation(name, f"common/episodic_{framework}.py", old,
                    old.replace("lr_schedule(learning_rate, decay_every, decay)", "lr_schedule(learning_rate, None, decay)"),
                    tests, f"{FRAMEWORK_NAMES[framework]} trains {what} at a constant rate whatever --decay-every says")


MUTATIONS = [
    # --- learner options (issue: first order only tested through meta_loss/adapt)
    Mutation("keras-maml-ignores-first-order", "chapters/optimization/maml_keras.py",
             "        self.first_order = first_order\n", "        self.first_order = False\n",
             ("tests/test_learner_options.py", "-k", "maml-first-order"),
             "Keras' --first-order runs second-order MAML"),
    Mutation("keras-metasgd-drops-first-order", "chapters/optimization/metasgd_keras.py",
             "super().__init__(model, None, inner_steps, first_order,", "super().__init__(model, None, inner_steps, False,",
             ("tests/test_learner_options.py", "-k", "metasgd"),
             "Keras' Meta-SGD --first-order is second order"),
    Mutation("tf-learner-ignores-transductive", "chapters/optimization/maml_tf.py",
             "self.transductive, self.test_inner_steps = transductive, test_inner_steps",
             "self.transductive, self.test_inner_steps = False, test_inner_steps",
             ("tests/test_learner_options.py", "-k", "transductive"),
             "TensorFlow's --transductive normalises queries with the support set"),
    Mutation("script-drops-first-order", "chapters/optimization/maml.py",
             "config = MAMLConfig.from_args(args)", "config = MAMLConfig.from_args(args, first_order=False)",
             ("tests/test_learner_options.py", "-k", "maml-first-order"),
             "maml.py --first-order trains second order in every framework"),
    Mutation("torch-reptile-never-anneals", "chapters/optimization/reptile_torch.py",
             "        if not self.anneal_steps:", "        if True:",
             ("tests/test_learner_options.py", "-k", "reptile"),
             "PyTorch's Reptile keeps ε constant"),
    # --- evaluation mode (issue: Keras evaluating with batch statistics passed)
    Mutation("keras-evaluates-with-batch-statistics", "common/episodic_keras.py",
             "logits = self.model.predict_on_batch((episode.support_x, episode.support_y, episode.query_x))",
             "logits = self.model((episode.support_x, episode.support_y, episode.query_x), training=True)",
             ("tests/test_metric_exact.py", "-k", "evaluation"),
             "Keras' predict normalises with the episode's statistics (and moves the running ones)"),
    Mutation("torch-predict-forgets-eval", "common/episodic_torch.py",
             "        self.model.eval()  # BatchNorm uses its running statistics",
             "        pass  # BatchNorm uses its running statistics",
             ("tests/test_metric_exact.py", "-k", "evaluation"),
             "PyTorch's predict runs in training mode after a training step"),
    Mutation("keras-batchnorm-epsilon-default", "common/backbones/conv4_keras.py",
             "BatchNorm(momentum=0.9, epsilon=1e-5)", "BatchNorm(momentum=0.9, epsilon=1e-3)",
             ("tests/test_protonet.py", "tests/test_metric_exact.py", "-k", "evaluation or agree"),
             "Keras' BatchNorm with its own default epsilon"),
    Mutation("keras-batchnorm-momentum", "common/backbones/conv4_keras.py",
             "BatchNorm(momentum=0.9, epsilon=1e-5)", "BatchNorm(momentum=0.1, epsilon=1e-5)",
             ("tests/test_protonet.py",),
             "Keras' running statistics with PyTorch's momentum convention"),
    # --- float32 (issue: a 3e-2 tolerance let through what float32 rounding does not explain)
    Mutation("keras-maml-batchnorm-epsilon-default", "chapters/optimization/networks_keras.py",
             "EPSILON = 1e-5", "EPSILON = 1e-3",
             ("tests/test_float32_agreement.py",),
             "Keras' MAML network with Keras' default BatchNorm epsilon"),
    # --- schedules (issue: TF and Keras ignoring the decay passed)
    Mutation("tf-keras-ignore-decay", "common/episodic_tf.py",
             "    if not decay_every:\n        return base", "    if True:\n        return base",
             ("tests/test_metric_exact.py", "-k", "decay"),
             "TensorFlow and Keras train at a constant rate whatever --decay-every says"),
    Mutation("torch-decays-one-step-early", "common/episodic_torch.py",
             "base * decay ** (step // decay_every)", "base * decay ** ((step + 1) // decay_every)",
             ("tests/test_metric_exact.py", "-k", "decay"),
             "PyTorch halves the rate one episode early"),
    Mutation("keras-adam-epsilon-placement", "common/episodic_tf.py",
             "        epsilon = self.epsilon * ops.sqrt(1 - beta_2_power)\n", "        epsilon = self.epsilon\n",
             ("tests/test_protonet.py", "tests/test_metric_exact.py", "-k", "agree or decay"),
             "TensorFlow/Keras Adam with Keras' epsilon placement instead of PyTorch's"),
    # --- the statistical tests (issue: 4-10 point tolerances let through bugs that still learn): the same
    # bugs, seen by float32 trainings on real Omniglot rather than by the exact tests above. (SNAIL's
    # test does not claim to see a schedule: see its docstring.)
    *[ignores_decay(framework, f"{framework}-ignores-decay-metric-statistical", ("tests/test_metric_agreement.py",),
                    "the metric learners") for framework in ("tf", "keras")],
    *[Mutation(f"keras-evaluates-with-batch-statistics-{chapter}-statistical", "common/episodic_keras.py",
               "logits = self.model.predict_on_batch((episode.support_x, episode.support_y, episode.query_x))",
               "logits = self.model((episode.support_x, episode.support_y, episode.query_x), training=True)",
               (test,), f"Keras' predict normalises with the episode's statistics ({chapter})")
      for chapter, test in (("metric", "tests/test_metric_agreement.py"), ("snail", "tests/test_snail_agreement.py"))],
    ignores_decay("keras", "keras-ignores-decay-applications-statistical", ("tests/test_applications.py", "-k", "fewrel"),
                  "the text encoders"),
    ignores_decay("tf", "tf-ignores-decay-matching-text-statistical",
                  ("tests/test_applications.py", "-k", "fewrel and matching"), "Matching Networks on text"),
    Mutation("tf-maml-always-first-order-text-statistical", "chapters/optimization/maml_tf.py",
             "        self.first_order = first_order\n", "        self.first_order = True\n",
             ("tests/test_applications.py", "-k", "fewrel and maml"),
             "TensorFlow's MAML drops the Hessian term whatever --first-order says (seen on FewRel)"),
    Mutation("keras-text-cnn-valid-padding", "chapters/applications/encoders_keras.py",
             'ops.conv(x, kernel, strides=1, padding="same"', 'ops.conv(x, kernel, strides=1, padding="valid"',
             ("tests/test_applications.py", "-k", "fewrel"),
             "Keras' Proto-CNN convolves without padding (Keras' default): a PyTorch-trained encoder moved to "
             "Keras scores sentences otherwise"),
    Mutation("tf-keras-mann-rmsprop-without-momentum", "chapters/model_based/mann_tf.py",
             "    return RMSprop(lr, rho=0.95, momentum=0.9, epsilon=1e-8)", "    return RMSprop(lr, rho=0.95, epsilon=1e-8)",
             ("tests/test_mann_agreement.py",),
             "TensorFlow's and Keras' MANN and LSTM train with RMSProp without momentum (Keras' default)"),
    Mutation("keras-mann-ignores-lr", "chapters/model_based/mann_keras.py",
             "network.compile(optimizer=rmsprop(lr), jit_compile=jit_compile)",
             "network.compile(optimizer=rmsprop(1e-4), jit_compile=jit_compile)",
             ("tests/test_mann_agreement.py",),
             "Keras' MANN and LSTM train at the paper's rate 1e-4 whatever --lr says"),
    # --- Meta Networks: tests/test_metanet_agreement.py trains each framework on real Omniglot and moves
    # PyTorch's trained MetaNet to the other two; bugs in the forward pass are also planted against the
    # exact tests (test_metanet.py), which are the ones meant to see them
    *[ignores_decay(framework, f"{framework}-ignores-decay-metanet-statistical", ("tests/test_metanet_agreement.py",),
                    "its MetaNet") for framework in ("tf", "keras")],
    Mutation("keras-metanet-evaluates-without-fast-weights-statistical", "chapters/model_based/metanet_keras.py",
             "        return self.base(query_x, fast), attention, task_fast, memory  # Eq. 8",
             "        return self.base(query_x, fast if training else None), attention, task_fast, memory  # Eq. 8",
             ("tests/test_metanet_agreement.py",),
             "Keras' MetaNet evaluates with its slow weights alone (fast weights only in training mode)"),
    *[Mutation(f"{name}-{kind}", path, old, new, tests, bug)
      for name, path, old, new, bug in (
          ("tf-metanet-negated-fast-weights", "chapters/model_based/metanet_tf.py",
           "else tf.tensordot(attention, kernels, 1)", "else -tf.tensordot(attention, kernels, 1)",
           "TensorFlow's query reads W* = -a^T M (a sign that a MetaNet trained in TensorFlow learns around)"),
          ("torch-metanet-unscaled-gradient-sign", "chapters/model_based/metanet_torch.py",
           "torch.clamp(gradient * torch.exp(torch.tensor(k, dtype=gradient.dtype)), -1.0, 1.0)",
           "torch.clamp(gradient, -1.0, 1.0)",
           "PyTorch's meta information without the e^k of the sign feature: m sees ~0 for the sign of a small gradient"),
          ("tf-metanet-meta-information-not-stopped", "chapters/model_based/metanet_tf.py",
           "{i: tf.stop_gradient(gradient) for i", "{i: gradient for i",
           "TensorFlow's meta-gradient flows back through the meta information (second order)"))
      for kind, tests in (("exact", ("tests/test_metanet.py", "-k", "agree")),
                          ("statistical", ("tests/test_metanet_agreement.py",)))],
    # --- MAML: the agreement test of test_optimization_scripts.py meta-trains each framework on real Omniglot
    # (second order, support-set statistics, a constant meta rate: MAML has no schedule) and adapts
    # PyTorch's trained MAML in the other two. A learner that ignores --first-order or --transductive
    # there runs what the test runs (and a meta rate ignored falls back to Adam's 1e-3, the test's): those
    # are for test_learner_options.py above; here the bugs that change what the test runs.
    *[Mutation(f"{name}-maml-statistical", path, old, new,
               ("tests/test_optimization_scripts.py", "-k", "short_maml_training"), bug)
      for name, path, old, new, bug in (
          ("keras-predicts-with-training-inner-steps", "chapters/optimization/maml_keras.py",
           "                        self.test_inner_steps, first_order=True)",
           "                        self.inner_steps, first_order=True)",
           "Keras adapts a test task with the training's inner steps (1), not --test-inner-steps (3)"),
          ("tf-always-transductive", "chapters/optimization/maml_tf.py",
           "self.transductive, self.test_inner_steps = transductive, test_inner_steps",
           "self.transductive, self.test_inner_steps = True, test_inner_steps",
           "TensorFlow normalises every query set as one batch (Finn et al.'s code) whatever --transductive says"),
          ("tf-always-first-order", "chapters/optimization/maml_tf.py",
           "        self.first_order = first_order\n", "        self.first_order = True\n",
           "TensorFlow meta-trains first-order MAML whatever --first-order says"))],
    # --- shared code: sampler and adapters (issue: invisible to cross-framework tests)
    Mutation("shuffled-support-labels-left-behind", "common/episodes.py",
             "support_y=batch.support_y[rows, order])", "support_y=batch.support_y)",
             ("tests/test_shared_properties.py",),
             "Reptile's shuffled support images lose their labels"),
    Mutation("support-images-shot-major", "common/episodes.py",
             "support = self._flat.take(rows[:, :self.shot].ravel(), axis=0)",
             "support = self._flat.take(rows[:, :self.shot].T.ravel(), axis=0)",
             ("tests/test_shared_properties.py",),
             "support images in shot-major order, labels in class-major order"),
    Mutation("torch-adapter-swaps-height-and-width", "common/adapters.py",
             "tensor = tensor.movedim(-1, -3)", "tensor = tensor.movedim(-1, -3).transpose(-1, -2)",
             ("tests/test_shared_properties.py",),
             "PyTorch gets every image transposed (square images: no shape error anywhere)"),
    # --- a trained model moving between frameworks (the converters of common.weights)
    Mutation("torch-conv-kernel-spatially-transposed", "common/weights.py",
             "        return w.transpose(2, 3, 1, 0)", "        return w.transpose(3, 2, 1, 0)",
             ("tests/test_metric_exact.py", "-k", "checkpoint and protonet"),
             "PyTorch's conv kernels exported with height and width swapped (and imported back the same way: "
             "a PyTorch checkpoint reloads fine in PyTorch)",
             more=(("        return k.transpose(3, 2, 0, 1)", "        return k.transpose(3, 2, 1, 0)"),)),
    # --- a checkpoint of the optimization chapter in another framework
    Mutation("tf-metasgd-loads-theta-only", "chapters/optimization/metasgd_tf.py",
             "        super().load_model(arrays)\n        for name, alpha in self.inner_lrs.items():",
             "        super().load_model(arrays)\n        for name, alpha in {}.items():",
             ("tests/test_optimization_checkpoints.py", "-k", "float64 and metasgd"),
             "a Meta-SGD checkpoint evaluated in TensorFlow adapts with its initial rates α, not the learned ones"),
    # --- results
    Mutation("table-shows-the-best-run-not-the-latest", "common/results.py",
             'for result in sorted(results, key=lambda r: r.get("date", "")):\n        cell =',
             'for result in sorted(results, key=lambda r: r.get("accuracy", 0)):\n        cell =',
             ("tests/test_shared_properties.py", "-k", "table"),
             "a cell shows a setting's best run instead of its latest"),
    Mutation("confidence-interval-z", "common/evaluation.py",
             "float(1.96 * values.std", "float(1.645 * values.std",
             ("tests/test_evaluation.py",),
             "a 90% interval reported as a 95% one"),
]


def scratch_copy() -> Path:
    """The working tree (tracked and untracked-but-not-ignored files) in a temporary folder."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             check=True, capture_output=True).stdout.decode().split("\0")
    folder = Path(tempfile.mkdtemp(prefix="mutations-"))
    for relative in filter(None, listing):
        source = ROOT / relative
        if source.is_file():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return folder


def run_tests(folder: Path, tests: tuple[str, ...], log: Path | None = None) -> tuple[int, float, str]:
    """(pytest's exit code, seconds, its last lines) for ``tests`` run in ``folder``; with ``log``, pytest's
    whole output goes there, passed tests' printed measurements included (``-rA``)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no stale .pyc when a file is restored
    env.setdefault("METALEARN_DATA", str(ROOT.parent / "shared" / "data"))
    start = time.perf_counter()
    report = ("-rA",) if log else ()
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *report, *tests],
                          cwd=folder, env=env, capture_output=True, text=True)
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout + done.stderr)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.perf_counter() - start, "\n".join(lines[-3:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unmutated tests")
    parser.add_argument("--log", type=Path, metavar="FOLDER",
                        help="write each run's whole pytest output (what the tests measured) to FOLDER/<mutation>.txt")
    args = parser.parse_args(argv)
    names = {m.name for m in MUTATIONS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:40s} {m.path}\n{'':40s} {m.bug}\n{'':40s} pytest {' '.join(m.tests)}")
        return 0

    folder = scratch_copy()
    print(f"scratch copy: {folder}")
    try:
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                log = args.log and args.log / f"baseline-{len(list(args.log.glob('baseline-*')))}.txt"
                code, seconds, tail = run_tests(folder, tests, log)
                if code != 0:
                    print(f"baseline FAILS ({seconds:.0f} s): pytest {' '.join(tests)}\n{tail}")
                    return 1
            print("baseline: every targeted test passes unmutated")
        rows, start = [], time.perf_counter()
        for m in chosen:
            path = folder / m.path
            original = path.read_text()
            counts = [original.count(old) for old, _ in m.edits()]
            if counts != [1] * len(counts):
                rows.append((m.name, "STALE", 0.0, f"the texts to mutate occur {counts} times, not once each"))
                continue
            mutated = original
            for old, new in m.edits():
                mutated = mutated.replace(old, new)
            path.write_text(mutated)
            try:
                code, seconds, tail = run_tests(folder, m.tests, args.log and args.log / f"{m.name}.txt")
            finally:
                path.write_text(original)
            verdict = "caught" if code == 1 else "survived" if code == 0 else f"error {code}"
            rows.append((m.name, verdict, seconds, m.bug))
            print(f"{m.name:40s} {verdict:9s} {seconds:6.0f} s", flush=True)
        print(f"\n| mutation | verdict | seconds | the bug |\n|---|---|---|---|")
        for name, verdict, seconds, bug in rows:
            print(f"| {name} | {verdict} | {seconds:.0f} | {bug} |")
        caught = sum(verdict == "caught" for _, verdict, _, _ in rows)
        print(f"\n{caught} of {len(rows)} caught, {time.perf_counter() - start:.0f} s")
        return 0 if caught == len(rows) else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
