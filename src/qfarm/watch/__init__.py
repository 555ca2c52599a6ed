"""Watch folders (droplets): a new file dropped in a folder becomes one batch, once it has
stopped growing; its source is then moved to ``done/`` or ``failed/`` (or marked with a
sidecar).

The watching is here, once, whoever runs it: ``qfarm watch`` on any machine (the
submitter speaks HTTP to the controller, :mod:`qfarm.watch.remote`) or ``qfarm controller
--watch`` (the submitter calls the controller in its own loop,
:mod:`qfarm.controller.watched`). What a watcher took is kept in the controller's store,
claimed before its batch is submitted, so neither a restart nor a second watcher submits
a file twice.

- :mod:`~qfarm.watch.names`: which files a watcher leaves alone (dotfiles, partial downloads)
- :mod:`~qfarm.watch.stability`: when a file has stopped growing (pure)
- :mod:`~qfarm.watch.settings`: a watch's settings, and the ``[[watch]]`` config file
- :mod:`~qfarm.watch.submitter`: what a watcher needs of a controller (a protocol)
- :mod:`~qfarm.watch.folder`: listing the folder, moving sources, writing sidecars
- :mod:`~qfarm.watch.events`: watchdog's file events, handed to the watcher's loop
- :mod:`~qfarm.watch.report`: what a watcher tells as it goes
- :mod:`~qfarm.watch.watcher`: the watcher itself
"""
