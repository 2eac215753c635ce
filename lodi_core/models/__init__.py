"""Models: HALOgen (network and masked loss), the LODI VDM (noise schedule, loss, reverse
loop) with its U-Net denoiser and box sampler, and the halo-model and LDL baselines."""
