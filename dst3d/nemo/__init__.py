"""NeMo, P3D-Diffusion's render-and-compare pose estimator (a neural mesh per category whose vertex features an
image's feature map is compared with), in progress: the mesh geometry (:mod:`.mesh`) and the feature side
(:mod:`.features`: the stride-8 feature network, the memory bank, the contrastive loss) exist and are tested; the
correspondences and render-and-compare inference with PyTorch3D, CC3D and the workflow's rules do not yet, so no
rule trains or evaluates NeMo (README.md, "NeMo")."""
