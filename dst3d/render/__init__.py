"""The render stage: one Blender session per shard (:mod:`.blender`), the viewpoint draws (:mod:`.viewpoints`)
and the annotation record of every image (:mod:`.annotations`)."""
