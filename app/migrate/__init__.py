"""Schema evolution, runtime side (a package of the steps' life: ``declared`` tables, ``data``
asked, ``describe``, ``apply``, ``constraints`` and ``indexes`` finished online, ``retire``,
``applied`` state, one ``upgrade``): what each generated migration step checks, how it describes
itself to a person, and how it is applied — without losing or duplicating a row.

* A step that existing data would violate is *refused* with counts and examples; nothing runs.
* A removed field or entity is *retired*: the column or table stays (made nullable) and comes back
  with its data when the field is re-added; only ``--allow-destructive`` drops it, after a backup.
* SQLite: a timestamped copy in ``var/backups/`` first, restored if anything fails.
  PostgreSQL: every step of every pending revision in one transaction.
* The list indexes (``lx_*``: sort, owner-scope and trigram search indexes derived from the
  workbook's list/search flags by ``app.spec.columns.indexes_of``) hold no data: every upgrade
  brings them to what the lists need (:func:`ensure_indexes`).
* PostgreSQL, on a live system with big tables: the upgrade's transaction is kept short, because
  the locks it takes hold until it commits. It waits at most ``CRM_UPGRADE_LOCK_TIMEOUT_MS`` for
  each lock (a long report or an open transaction would otherwise queue every page behind it),
  tries again a few times, then gives up naming the sessions in the way, nothing changed. A new
  field's constant default is kept in the catalogue (no table rewrite). Indexes of big tables are
  built after the commit with ``CREATE INDEX CONCURRENTLY``, reads and writes going on
  (:func:`build_indexes_online`); one interrupted is rebuilt by the next upgrade. So is what
  would scan or write every row of a big table: a new link's key check, a field made unique or
  made required (:class:`ConstraintWork`, :func:`finish_constraints`).
"""
