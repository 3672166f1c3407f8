"""AOT compile of the train step for a small TPU topology (v5e:2x2) on this CPU machine, through the CLI code.

Runs in one subprocess with its own environment: libtpu compiles for the topology while the test process keeps
its 8 fake CPU devices. Each case goes through skip_t5x.aot's absl flags and main(), as `python -m skip_t5x.aot`.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--gin_file=runs/pretrain.gin", "--gin_file=models/dense_tiny.gin",
        "--gin.MIXTURE_OR_TASK_NAME='embedded_lm'", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}",
        "--gin.BATCH_SIZE=8", "--gin.MESH_DATA=-1", "--gin.MESH_FSDP=1", "--gin.OPTIMIZER='adamw'"]
CASES = {
    "bad_topology": ["--topology=v5e:3x3", *TINY],
    "mesh_too_big": ["--topology=v5e:2x2", *TINY, "--gin.MESH_DATA=8"],
    "too_much_memory": ["--topology=v5e:2x2", *TINY, "--gin_bindings=DecoderConfig.mlp_dim = 8388608"],
    "fits": ["--topology=v5e:2x2", *TINY, "--json_out={json_out}"],
}
DRIVER = r"""
import json, sys
from absl import flags
from skip_t5x import aot, gin_utils
aot._define_flags()
for name, argv in json.loads(sys.argv[1]).items():
    flags.FLAGS.unparse_flags()
    rest = flags.FLAGS(gin_utils.rewrite_gin_args(["aot", *argv]))
    try:
        aot.main(rest)
        code = 0
    except SystemExit as e:
        code = e.code
    print(f"@@aot-case {name} exit {code}", flush=True)
"""


@pytest.fixture(scope="module")
def aot_run(tmp_path_factory):
  if importlib.util.find_spec("libtpu") is None:
    pytest.skip("libtpu is not installed (pip install -e '.[tpu]'); it is what compiles for TPU topologies")
  json_out = str(tmp_path_factory.mktemp("aot") / "report.json")
  cases = {k: [a.replace("{json_out}", json_out) for a in v] for k, v in CASES.items()}
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], cwd=REPO, env=env, timeout=300,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  outputs, current = {}, []
  for line in proc.stdout.splitlines():
    if line.startswith("@@aot-case "):
      name, _, code = line[len("@@aot-case "):].rpartition(" exit ")
      outputs[name] = (int(code), "\n".join(current))
      current = []
    elif not line.startswith(("WARNING", "E0000", "I0000", "W0000")):
      current.append(line)
  assert set(outputs) == set(CASES), proc.stdout[-3000:]
  with open(json_out) as f:
    report = json.load(f)
  return outputs, report


def test_unknown_topology_is_a_clear_error(aot_run):
  code, out = aot_run[0]["bad_topology"]
  assert code == 1 and "error: TPU topology 'v5e:3x3' is not available" in out


def test_mesh_larger_than_the_topology_is_a_clear_error(aot_run):
  code, out = aot_run[0]["mesh_too_big"]
  assert code == 1
  assert "error: the mesh does not fit topology v5e:2x2 (4 devices)" in out and "'data': 8" in out


def test_a_step_that_does_not_fit_in_hbm_is_a_clear_error(aot_run):
  # 2 layers x 3 matrices of 64 x 8M float32, replicated over data=4, plus AdamW moments: ~30 GiB per chip.
  code, out = aot_run[0]["too_much_memory"]
  assert code == 1 and "error: the train step does not fit on v5e:2x2" in out and "16.00 GiB HBM" in out


def test_compiles_for_v5e_2x2_and_reports_memory_flops_and_shardings(aot_run):
  code, out = aot_run[0]["fits"]
  report = aot_run[1]
  assert code == 0, out
  assert "total" in out and ": fits" in out and "largest arrays (per chip):" in out
  assert (report["num_chips"], report["device_kind"], report["mesh"]) == (
      4, "TPU v5 lite", {"data": 4, "fsdp": 1, "model": 1})
  assert report["compiled"] and report["fits"] and 0 < report["total_bytes"] <= report["hbm_bytes"] == 16 * 2**30
  # Every array of the state is an argument of the step: the per-chip argument size covers them all.
  arrays = report["largest_arrays"]
  assert report["argument_bytes"] >= sum(a["bytes_per_chip"] for a in arrays)
  for a in arrays:  # data-parallel mesh: params replicated, so each chip holds the full array
    itemsize = {"float32": 4, "bfloat16": 2, "int32": 4}[a["dtype"]]
    size = 1
    for d in a["shape"]:
      size *= d
    assert a["bytes_per_chip"] == size * itemsize, a
  # Three FLOP counts of one step: the program's matmuls (counted from the traced jaxpr), model/flops.py's
  # analytic formula, and XLA's count of the compiled program (all chips; it adds elementwise and optimizer
  # work). The tiny config is not scanned, so XLA sees every layer.
  program, analytic, xla = (report["program_flops_per_step"], report["analytic_flops_per_step"],
                            report["flops_per_step"])
  assert 0.9 < program / analytic < 1.1, (program, analytic)
  assert 1.0 <= xla / program < 1.6, (xla, program)
  # head_dim 16 is not a multiple of 128, so 'auto' attention falls back from splash to blockwise on TPU
  assert report["attention"] == ["blockwise"] and "attention: blockwise" in out
