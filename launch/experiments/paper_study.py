"""The paper's study (gin/studies/paper_tpu.gin) on Cloud TPU VMs: one work unit per arm and seed.

    python -m launch tpu_vm launch/experiments/paper_study.py --project=my-project \
        --set model_dir='gs://my-bucket/{name}/{STUDY_ARMS}/seed{SEEDS}' --set tfds_data_dir=gs://my-bucket/tfds
    python -m skip_t5x.report gs://my-bucket/paper-study          # when every work unit is done

Each work unit runs `python -m skip_t5x.study` for one arm and seed (--gin.STUDY_ARMS, --gin.SEEDS) with
--model_dir set to that run's directory: the same train and eval commands, held-out measurement and step timing
as the local study, then no report. 27 arms (9 arms x 3 sizes) x 2 seeds = 54 work units.
"""
import os

from launch import Experiment, TpuVm, zipped
from skip_t5x.study import configs

STUDY_GIN = "gin/studies/paper_tpu.gin"
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def arm_seed_points(study_gin: str = STUDY_GIN):
  """(arm, seed) sweep points of the study, arm-major: STUDY_ARMS and SEEDS as one-element tuples."""
  study = configs.load_study([os.path.join(_REPO, study_gin)])
  pairs = [(arm.name, seed) for arm in study.expanded_arms() for seed in study.seeds]
  return zipped(STUDY_ARMS=[(arm,) for arm, _ in pairs], SEEDS=[(seed,) for _, seed in pairs])


EXPERIMENT = Experiment(
    name="paper-study",
    gin_files=(STUDY_GIN,),
    entry_point="skip_t5x.study",
    sweep=arm_seed_points(),
    model_dir="gs://YOUR_BUCKET/{name}/{STUDY_ARMS}/seed{SEEDS}",
    tfds_data_dir="gs://YOUR_BUCKET/tensorflow_datasets",
    topology="v5e:16x16",
    num_slices=1,
)

TPU_VM = TpuVm(zone="us-west4-a", provisioning="queued", spot=False)
