"""The foundation every other package stands on: errors, paths, typed options, devices, progress and cancel, file
I/O, images, checkpoints, plug-in loading. Nothing here imports another package of the library."""
