"""The tiny skip model on the embedded corpus, as 2 local processes x 4 CPU devices per work unit.

    python -m launch local launch/experiments/tiny_local.py
    python -m launch local launch/experiments/tiny_local.py --num_processes=1 --devices_per_process=8 --only=1

Two work units (SKIP_RATIO 0.25 and 0.5), run one after the other; logs in runs/launch_logs/tiny-local/<wid>/.
"""
from launch import Experiment, Local, product

EXPERIMENT = Experiment(
    name="tiny-local",
    gin_files=("gin/runs/pretrain.gin", "gin/models/skip_tiny.gin"),
    overrides={
        "MIXTURE_OR_TASK_NAME": "embedded_lm",
        "TASK_FEATURE_LENGTHS": {"targets": 64},
        "TRAIN_STEPS": 20,
        "BATCH_SIZE": 8,
        "MESH_DATA": 1,
        "MESH_FSDP": -1,
        "LOG_EVERY_STEPS": 5,
        "CHECKPOINT_PERIOD": 10,
    },
    sweep=product(SKIP_RATIO=[0.25, 0.5]),
    model_dir="runs/{name}/{wid}_{overrides}",
)

LOCAL = Local(num_processes=2, devices_per_process=4, log_dir="runs/launch_logs", timeout_s=1800)
