"""Generation: trained models applied to whole volumes (HALOgen by sliding windows, LODI by
latent overlap stage by stage, the baselines in one piece) and the jobs that write them."""
