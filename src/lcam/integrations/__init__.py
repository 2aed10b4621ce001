"""Use LCAM inside training frameworks; one module per framework, each an optional extra.

* :mod:`lcam.integrations.lightning` (``pip install "lcam[lightning]"``):
  ``LCAMCallback`` for ``lightning.Trainer``.
* :mod:`lcam.integrations.transformers` (``pip install "lcam[transformers]"``):
  ``LCAMTrainer``, a ``transformers.Trainer`` subclass.
* Accelerate (``pip install "lcam[accelerate]"``) needs no module: call
  ``opt.record_loss(loss)`` on the LCAM object before ``optimizer.step()``
  (docs/integrations/ACCELERATE.md).

Importing :mod:`lcam` or this package imports no framework; each module imports its
own framework only when it is itself imported.
"""
