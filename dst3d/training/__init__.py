"""Networks and their training: the shared loop and checkpoints (:mod:`.loop`), the crops they see
(:mod:`.cropping`), and the tasks: the pose estimator (:mod:`.pose`) and the category classifier
(:mod:`.classify`)."""
