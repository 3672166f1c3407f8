"""Experiments, sweeps, work units and TPU topology naming."""
import pytest

from launch import Experiment, Raw, Topology, gin_literal, product, zipped


def _experiment(**changes):
  fields = dict(name="sweep", gin_files=("gin/runs/tiny.gin",), model_dir="/runs/{name}/{wid}_{overrides}",
                sweep=product(SKIP_RATIO=[0.25, 0.5, 0.75], ROUTED=["layer", "ffn"]))
  fields.update(changes)
  return Experiment(**fields)


def test_product_is_cartesian_first_axis_slowest():
  points = product(SKIP_RATIO=[0.25, 0.5, 0.75], ROUTED=["layer", "ffn"])
  assert points == [{"SKIP_RATIO": r, "ROUTED": m} for r in (0.25, 0.5, 0.75) for m in ("layer", "ffn")]
  assert zipped(A=[1, 2], B=["x", "y"]) == [{"A": 1, "B": "x"}, {"A": 2, "B": "y"}]
  with pytest.raises(ValueError, match="equal lengths"):
    zipped(A=[1, 2], B=[1])
  with pytest.raises(ValueError, match="'A' has no values"):
    product(A=[])


def test_gin_literals():
  assert gin_literal(0.5) == "0.5"
  assert gin_literal("layer") == '"layer"'
  assert gin_literal('a"b') == r'"a\"b"'
  assert gin_literal(True) == "True" and gin_literal(None) == "None"
  assert gin_literal((1, 2)) == "(1, 2)" and gin_literal((3,)) == "(3,)" and gin_literal([1]) == "[1]"
  assert gin_literal(Raw("@schedules.rsqrt()")) == "@schedules.rsqrt()"
  assert gin_literal({"targets": 64}) == '{"targets": 64}'
  with pytest.raises(TypeError, match=r"\{1, 2\}"):
    gin_literal({1, 2})


def test_work_units_get_ids_overrides_and_distinct_model_dirs():
  exp = _experiment(overrides={"TRAIN_STEPS": 10, "SKIP_RATIO": 0.0}, tfds_data_dir="/data/tfds",
                    env={"LIBTPU_INIT_ARGS": "--xla_tpu_x=1"})
  units = exp.work_units()
  assert [u.wid for u in units] == [1, 2, 3, 4, 5, 6]
  assert units[3].model_dir == "/runs/sweep/4_SKIP_RATIO=0.5,ROUTED=ffn"
  # The sweep point overrides the fixed value of the same name; fixed overrides stay.
  assert units[3].overrides == {"TRAIN_STEPS": 10, "SKIP_RATIO": 0.5, "ROUTED": "ffn"}
  assert units[3].train_args() == [
      "--gin_file=gin/runs/tiny.gin", "--gin.TRAIN_STEPS=10", "--gin.SKIP_RATIO=0.5", '--gin.ROUTED="ffn"',
      "--model_dir=/runs/sweep/4_SKIP_RATIO=0.5,ROUTED=ffn"]
  assert units[0].env == {"LIBTPU_INIT_ARGS": "--xla_tpu_x=1", "TFDS_DATA_DIR": "/data/tfds"}
  assert len({u.model_dir for u in units}) == 6


def test_template_fields_and_formats():
  exp = _experiment(model_dir="gs://b/{name}/r{SKIP_RATIO}/{ROUTED}/{wid:02d}")
  assert [u.model_dir for u in exp.work_units()][:2] == ["gs://b/sweep/r0.25/layer/01", "gs://b/sweep/r0.25/ffn/02"]


@pytest.mark.parametrize("changes, message", [
    (dict(name="Bad_Name"), "experiment name 'Bad_Name'"),
    (dict(gin_files=()), "has no gin_files"),
    (dict(model_dir="/runs/{wid}/{bucket}"), r"unknown field\(s\) \['bucket'\]"),
    (dict(model_dir="/runs/{name}"), "the same for all 6 work units"),
    (dict(model_dir="/runs/{ROUTED}"), "share model_dir '/runs/ffn'"),
    (dict(overrides={"bad key": 1}), "override name 'bad key'"),
    (dict(topology="v5e-16x16"), "TPU topology 'v5e-16x16'"),
    (dict(num_slices=0), "num_slices 0"),
    (dict(env={"1X": "y"}), "environment variable name '1X'"),
])
def test_bad_experiments_fail_naming_the_value(changes, message):
  with pytest.raises(ValueError, match=message):
    _experiment(**changes)


@pytest.mark.parametrize("name, chips, accel, flags, hosts", [
    ("v5e:16x16", 256, "v5litepod-256", ["--accelerator-type=v5litepod-256"], 64),
    ("v5e:2x2", 4, "v5litepod-4", ["--accelerator-type=v5litepod-4"], 1),
    ("v4:4x4x16", 256, "v4-512", ["--type=v4", "--topology=4x4x16"], 64),
    ("v5p:4x8x8", 256, "v5p-512", ["--type=v5p", "--topology=4x8x8"], 64),
    ("v6e:16x16", 256, "v6e-256", ["--accelerator-type=v6e-256"], 64),
])
def test_topology_names(name, chips, accel, flags, hosts):
  topo = Topology.parse(name)
  assert (topo.name, topo.num_chips, topo.accelerator_type, topo.gcloud_shape_flags, topo.num_hosts) == (
      name, chips, accel, flags, hosts)
