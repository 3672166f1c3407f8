"""On a machine without TPU chips, no command or benchmark prints libtpu's TPU host-discovery errors."""
import os
import subprocess
import sys

from skip_t5x import platforms

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_local_libtpu_env_is_set_only_without_tpu_chips_and_never_overrides():
  env = {"TPU_WORKER_HOSTNAMES": "10.0.0.2"}
  assert platforms.quiet_absent_tpu(env, tpu_chips=False)
  assert env["TPU_WORKER_HOSTNAMES"] == "10.0.0.2" and env["TPU_SKIP_MDS_QUERY"] == "1"
  on_tpu = {}
  assert not platforms.quiet_absent_tpu(on_tpu, tpu_chips=True) and on_tpu == {}


def test_importing_the_package_then_querying_devices_prints_no_tpu_errors():
  env = {k: v for k, v in os.environ.items() if not k.startswith("TPU_") and k != "JAX_PLATFORMS"}
  code = "import skip_t5x, jax; print(jax.devices()[0].platform)"
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  if not platforms.has_tpu_chips():
    assert "TPU_WORKER_HOSTNAMES" not in out.stderr and "accelerator type" not in out.stderr
