"""skip_t5x: learning-to-skip decoder-only language models in JAX/Flax, T5X style."""
import setuptools

CORE = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "seqio==0.0.20",
    "tensorflow==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-datasets==4.9.10",
    "tensorboard==2.21.0",
    "importlib_resources",  # tfds 4.9.10 needs it but does not declare it
    "gin-config==0.5.0",
    "sentencepiece==0.2.3",
    "absl-py",
    "numpy",
]

setuptools.setup(
    name="skip_t5x",
    version="0.1.0",
    description="Learning to Skip for Language Modeling: routed decoder-only Transformers in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["skip_t5x", "skip_t5x.*", "launch", "launch.*"]),
    package_data={"skip_t5x": ["py.typed", "data/assets/*.model", "data/fewshot_suite.tsv"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        "tpu": ["jax[tpu]==0.10.2"],
        "plot": ["matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "skip-t5x-train=skip_t5x.train:console_entry",
            "skip-t5x-eval=skip_t5x.eval:console_entry",
            "skip-t5x-infer=skip_t5x.infer:console_entry",
        ]
    },
)
