"""The training wing: what a run is, how it trains, and what becomes of it.

Modules: `config` (`TrainConfig`, validated when made), `recipe` (what a config turns into: model
and augmentation, optimizer, schedule, warm starts, distillation targets, class weights), `loop`
(`train`, `start_prepared`, `resume`; selection and reporting splits; metrics.json), `runs` (the
read side, stop), `launch`, `promote` (kept versions, restore), `estimate` (a run's length before
launch). Import them by name: this face imports nothing, so `fer_core.training.config` stays light
enough for the CLI to refuse a bad number before Keras loads.
"""
