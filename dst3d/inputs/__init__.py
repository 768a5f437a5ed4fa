"""Inputs of the workflow: the asset tables (:mod:`.catalog`), mesh files (:mod:`.meshes`), the embedded
default's procedural assets (:mod:`.embedded`, :mod:`.procedural_meshes`) and the readers of the real datasets
that the pose estimators are evaluated on (:mod:`.datasets`)."""
