"""Training: one generic loop (checkpoints, exact resume, EMA, validation, loss CSV) and the
data and set-up of HALOgen, LODI and the baselines. Nothing here plots or generates."""
