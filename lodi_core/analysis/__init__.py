"""Analysis: generated volumes and predicted halos scored against the simulations (P(k)
residuals, r(k), PDFs, seams, HALOgen's channel metrics, posterior statistics)."""
