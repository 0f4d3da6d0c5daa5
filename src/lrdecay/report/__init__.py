"""The study's report: load a sweep's runs, summarise, test the study's claims, write tables
and figures (``lrdecay-report`` or ``python -m lrdecay.report``)."""
