"""Optimization-based meta-learning: learn an initialisation from which a few gradient steps adapt.

``maml_torch.py``, ``maml_tf.py`` and ``maml_keras.py`` are MAML (Finn, Abbeel & Levine, 2017)
three times, with the same names; ``sinusoid.py`` trains and evaluates it on sinusoid regression.
"""
