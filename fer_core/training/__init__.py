"""The training wing: what a run is, how it trains, and what becomes of it.

Modules: `config` (`TrainConfig`, validated when made), `recipe` (what a config turns into: model
and augmentation, optimizer, schedule, warm starts, distillation targets, class weights), `loop`
(`train`, `start_prepared`, `resume`; selection and reporting splits; metrics.json), `fitting` (one
fit of the model over the devices), `runs` (the
read side, stop), `launch`, `promote` (a run into trained/), `versions` (kept versions, restore), `model_card`, `estimate` (a run's length before
launch), `callback` (the Keras callback that makes `fit` a run), `stop_request` (SIGTERM or a STOP file), `state` (a run's bookkeeping for
resume), `devices` (where it trains; data parallelism), `crossval` and `crossval_runs` (K folds by
subject, and their read side). Import them by name: this face imports nothing, so `fer_core.training.config` stays light
enough for the CLI to refuse a bad number before Keras loads.
"""
