"""The whole-loop demo behind ``mlops demo``: a clinic's data, distributed training,
guarded serving, drift and retraining (:mod:`engine.demo.story`), on synthetic patients
(:mod:`engine.demo.clinic`), trained by :mod:`engine.demo.train` under ``mlops run`` or
``mlops submit``.

It sits at the top with the command line: it uses every layer, and no layer uses it.
"""
