"""nlpkit: text-classification experiments — stratified splits, strong baselines, domain
pretraining, fine-tuning and honest comparison reports, on one dataset layer, one metrics layer
and one run registry."""

__version__ = "0.1.0"
