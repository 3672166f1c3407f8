"""Skip-ratio sweep of the 1.7B skip model on a v5e 256-chip slice (one slice per work unit).

    python -m launch tpu_vm launch/experiments/skip_ratio_sweep.py --project=my-project \
        --set model_dir='gs://my-bucket/{name}/{wid}_{overrides}' --set tfds_data_dir=gs://my-bucket/tfds

Six work units: SKIP_RATIO in {0.25, 0.5, 0.75} x ROUTED in {layer, ffn}.
"""
from launch import Experiment, TpuVm, product

EXPERIMENT = Experiment(
    name="skip-ratio-sweep",
    gin_files=("gin/runs/pretrain.gin", "gin/models/skip_1p7b.gin"),
    overrides={"TRAIN_STEPS": 100_000},
    sweep=product(SKIP_RATIO=[0.25, 0.5, 0.75], ROUTED=["layer", "ffn"]),
    model_dir="gs://YOUR_BUCKET/{name}/{wid}_{overrides}",
    tfds_data_dir="gs://YOUR_BUCKET/tensorflow_datasets",
    topology="v5e:16x16",
    num_slices=1,
)

TPU_VM = TpuVm(zone="us-west4-a", provisioning="queued", spot=False)
