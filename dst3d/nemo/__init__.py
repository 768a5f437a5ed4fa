"""NeMo, P3D-Diffusion's render-and-compare pose estimator (a neural mesh per category whose vertex features an
image's feature map is compared with), in progress: the mesh geometry (:mod:`.mesh`) and the feature side
(:mod:`.features`: the stride-8 feature network, the memory bank, the contrastive loss) and CC3D's scoring
(:mod:`.correspondence`: vertex cells of a pose, confidence, domain loss, pseudo-label choice) exist and are
tested; rasterised correspondences and render-and-compare inference with PyTorch3D, training, the CC3D loop and
the workflow's rules do not yet, so no rule trains or evaluates NeMo (README.md, "NeMo")."""
