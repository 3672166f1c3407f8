"""The model: the routed decoder, the model API around it (losses, scoring, decoding) and analytic FLOPs.

Owns what a forward pass computes and what it costs. May import: skip_t5x.layers (and jax, flax, gin); never
parallel/, training/, evaluation/ or data/. `api.LanguageModel` is the contract the layers above rely on;
`decoder_only.DecoderOnlyModel` implements it.
"""
