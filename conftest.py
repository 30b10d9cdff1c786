"""pytest's set-up for the whole checkout: the tests in tests/ and the doctests in tfprune/.

* **Data.** When ``TFPRUNE_DATA`` is not set, it is set to ``../shared/data`` beside the
  checkout if that exists, so the doctests find their data exactly as a user's program
  does (see :func:`tfprune.datasets.data_dir`), from any working directory.
* **Two stacks.** The suite runs on the pinned stack (TensorFlow 2.15) and on the current
  one (TensorFlow 2.21 with tf-keras; README, "Compatibility"). What needs tf-agents, which
  installs only on the pinned stack, is skipped on the current one and runs on the pinned
  one, where CI installs it.
* **Unit and integration tests.** A test is marked ``integration`` when it reads the real
  data (it asks for a fixture that loads it, or a doctest calls a function that does),
  needs the Cortex-M toolchain or emulator, or takes more than about 3 seconds (the lists
  below, measured with ``--durations``). ``pytest -m "not integration"`` (``make unit``)
  runs the rest; ``make test`` runs everything. A new slow test belongs in a list here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tfprune  # noqa: E402,F401  (before any test imports TensorFlow: selects Keras 2 on TensorFlow 2.16+)
from tfprune.keras_model import tensorflow_version  # noqa: E402

#: Whether this is the pinned stack (TensorFlow 2.15), where tf-agents installs.
PINNED_STACK = tensorflow_version() == (2, 15)
#: The module and tests that need tf-agents (ARSP's 'ppo' and 'random' controllers).
NEEDS_TF_AGENTS = {
    "test_binary.py::test_ppo_beats_a_random_policy_on_a_toy_with_known_best_ratios",
    "test_binary.py::test_ppo_logs_to_tensorboard",
    "test_binary.py::test_arsp_end_to_end_with_ppo",
    "test_binary.py::test_ppo_search_puts_the_callers_random_states_back",
}
collect_ignore = [] if PINNED_STACK else ["tfprune/prune/binary/ppo.py"]
_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"
if not os.environ.get("TFPRUNE_DATA") and _DATA.is_dir():
    os.environ["TFPRUNE_DATA"] = str(_DATA)

#: Fixtures (tests/conftest.py and the test modules) that load the real data.
DATA_FIXTURES = {"shared_data", "mlperf_quant", "trained_mnist", "mlperf_int8", "mlperf_reference", "mlperf_resnet8"}
#: Doctests calling one of these read the real data.
DATA_READERS = re.compile(r"\b(mlperf_path|data_dir|load_cifar10|cifar10_split|cifar10_dataset|load_mnist"
                          r"|mlperf_perf_indices|mlperf_calibration_indices|cifar10_drift_stream)\(|weights=\"mlperf\"")
#: Whole modules: the emulator, and surgery on every reference model.
INTEGRATION_MODULES = {"test_emulate.py", "test_reference_surgery.py", "test_compress_pipeline.py",
                       "test_prune_encoding.py"}
#: Tests that compile with arm-none-eabi-g++ or take more than about 3 s without real data
#: (on a 2-core host, or over 4 s on a busy one).
INTEGRATION_TESTS = {
    "test_baselines.py::test_baselines_keep_one_keras",
    "test_baselines.py::test_cluster_per_tensor_leaves_depthwise_alone",
    "test_baselines.py::test_magnitude_accepts_tf_data_and_leaves_depthwise_dense",
    "test_baselines.py::test_nonzero_helpers_match_tfmot_rows",
    "test_baselines.py::test_seed_makes_baselines_repeatable",
    "test_bench.py::test_harness_measures_artifacts_and_resumes",
    "test_binary.py::test_residual_binary_model_keeps_its_predictions_in_every_tflite_kernel_set",
    "test_binary.py::test_default_filter_pruning_shrinks_both_artifacts_and_connections_warn",
    "test_binary.py::test_android_lce_export_has_binary_ops_and_both_sizes",
    "test_binary.py::test_arsp_end_to_end_with_ppo",
    "test_binary.py::test_arsp_leaves_the_callers_model_and_random_states_alone",
    "test_binary.py::test_ppo_beats_a_random_policy_on_a_toy_with_known_best_ratios",
    "test_binary.py::test_cli_converts_a_larq_model_for_cortex_m",
    "test_binary.py::test_cortex_m_export_has_decode_and_tflm_outputs_identical",
    "test_c_array.py::test_model_data_compiles_for_cortex_m4_and_size_counts_the_array",
    "test_c_array.py::test_model_data_needs_only_a_cxx17_compiler",
    "test_binary.py::test_ppo_search_puts_the_callers_random_states_back",
    "test_masks.py::test_saved_and_loaded_model_keeps_masks_sources_and_outputs",
    "test_masks.py::test_strip_of_unpruned_wrap_exports_to_the_same_flatbuffer",
    "test_models.py::test_binary_variants_convert_to_lce_binary_convolutions",
    "test_models.py::test_parameter_counts_are_mlperf_tiny_s",
    "test_qsae.py::test_controller_pruned_model_exports_smaller_and_runs_in_tflite_micro",
    "test_reconvene.py::test_reconvene_model_is_smaller_runs_in_tflite_micro_and_trains",
    "test_reconvene.py::test_threshold_budget_and_order_choose_which_layers_are_rectified",
    "test_reconvene.py::test_residual_groups_are_rectified_together",
    "test_surgery.py::test_smaller_model_exports_smaller_and_runs_in_tflite_micro",
    "test_surgery.py::test_smaller_binary_model_exports_smaller_for_lce",
    "test_distill.py::test_distilled_student_moves_toward_the_teacher_and_only_the_student_trains",
    "test_binary.py::test_arsp_takes_its_old_ratios_keyword_with_a_deprecation_warning",
    "test_baselines.py::test_magnitude_reaches_target_sparsity_and_its_zeros_pay_only_prune_encoded",
}
#: Doctests of more than about 3 s (a PPO agent, training with tfmot or larq, a full Reconvene or export).
INTEGRATION_DOCTESTS = {
    "tfprune.baselines",
    "tfprune.baselines.tfmot_cluster",
    "tfprune.baselines.tfmot_magnitude",
    "tfprune.deploy.binary.export_both",
    "tfprune.prune.binary.arsp.arsp",
    "tfprune.prune.binary.ppo",
    "tfprune.prune.binary.ppo.search",
    "tfprune.prune.binary.reservoir.ReservoirPruning",
    "tfprune.prune.binary.training.FlipRatio",
    "tfprune.prune.reconvene",
    "tfprune.prune.reconvene.reconvene",
    "tfprune.prune.compress",
    "tfprune.prune.channels.taylor_channel_pruning",
    "tfprune.prune.qsae.selector",
    "tfprune.prune.qsae.selector.group_importance",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_rl = pytest.mark.skip(reason="needs tf-agents, which installs only on the pinned stack (TensorFlow 2.15)")
    for item in items:
        if _integration(item):
            item.add_marker(pytest.mark.integration)
        if not PINNED_STACK and _test_name(item) in NEEDS_TF_AGENTS:
            item.add_marker(skip_rl)


def _integration(item: pytest.Item) -> bool:
    dtest = getattr(item, "dtest", None)
    if dtest is not None:  # a doctest
        return item.name in INTEGRATION_DOCTESTS or any(DATA_READERS.search(e.source) for e in dtest.examples)
    module, name = item.path.name, _test_name(item)
    return (module in INTEGRATION_MODULES or name in INTEGRATION_TESTS
            or bool(DATA_FIXTURES & set(getattr(item, "fixturenames", ()))))


def _test_name(item: pytest.Item) -> str:
    return f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
