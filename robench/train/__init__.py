"""`robench train`: a classifier trained under an augmentation policy into a run folder.

    loop.py        build a training from its config, train_one_epoch, save_epoch, train (the verb)
    losses.py      the Objective: CE on soft targets + label smoothing + JSD + distillation
    optim.py       OPTIMIZERS (sgd, adamw, adabound) and the per-batch cosine schedule
    resume.py      what a checkpoint holds beyond the weights, and --resume's config check
    interrupts.py  SIGINT/SIGTERM -> checkpoint and exit 75; a non-finite loss stops before saving
    seeds.py       which runs one `robench train` means: one, one per --seeds, or --resume

The run folder's files are robench.runfolder's; the device and torchrun are robench.runtime's.
"""
