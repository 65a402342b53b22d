"""Privacy mechanisms and their analysis (pure): ``accounting`` says what an epsilon assumes
(accountant, sampling, adjacency); ``pate`` the teacher partition, noisy vote aggregation and its
RDP cost; ``label_dp`` randomized response; ``alibi`` ALIBI's Laplace label noise and its
posterior.
"""
