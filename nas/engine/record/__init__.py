"""What a search writes and reads back: the trial-attribute schema every stage agrees on
(:mod:`~nas.engine.record.trials`), the Optuna storage (:mod:`~nas.engine.record.storage`),
the report of a run (:mod:`~nas.engine.record.report`) and ``nas dashboard``
(:mod:`~nas.engine.record.dashboard`). Below the stages: each of them records through it."""
