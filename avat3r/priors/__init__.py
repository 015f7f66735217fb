"""Position priors (the paper's I^pos, I^conf, eq. 2) and feature priors (I^feat, eq. 3)."""
