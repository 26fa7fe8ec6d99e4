"""Causal graphs: structure learning, driver analysis and graph-based adjustment (issue 14).

``data`` (read and encode the ``drivers:`` table), ``knowledge`` (tiers, required and forbidden
edges, checked), ``scores`` (degenerate-Gaussian BIC and Gaussian CI test from sufficient
statistics), ``search`` (pgmpy's hill climbing and PC, bootstrap edge frequencies), ``model``
(the typed graph and its JSON), ``adjustment`` (valid backdoor sets, or a refusal), ``drivers``
(interventional effects with bootstrap intervals), ``run`` (the entry point of ``promo-opt
drivers``), ``report`` (HTML), ``worlds`` (simulated data from known graphs in ``scenarios/``).
"""
