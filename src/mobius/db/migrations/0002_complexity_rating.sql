-- 0002_complexity_rating: the runbook's "Database Schema Migration" example, with its intent kept:
-- two new columns on games, both indexes, the backfill from play_time (minutes:
-- 1 below 30, 2 from 30 to 60, 3 above 60), and its check ("should return 0") as a verify query.
-- Up, verify and the history row commit in one transaction (the runbook's BEGIN ... COMMIT).

-- migrate:up
ALTER TABLE games ADD COLUMN complexity_rating INTEGER;
ALTER TABLE games ADD COLUMN last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP;

CREATE INDEX idx_games_complexity ON games (complexity_rating);
CREATE INDEX idx_games_updated ON games (last_updated);

UPDATE games SET complexity_rating = 1 WHERE play_time < 30;
UPDATE games SET complexity_rating = 2 WHERE play_time BETWEEN 30 AND 60;
UPDATE games SET complexity_rating = 3 WHERE play_time > 60;

-- SQLite's ALTER TABLE cannot add a column whose default is CURRENT_TIMESTAMP, so on SQLite
-- games is rebuilt (docs/db.md, "Table rebuilds on SQLite"): new table, copy, drop, rename,
-- indexes again. The runner runs it with foreign_keys=OFF and checks PRAGMA foreign_key_check
-- before it commits.
-- migrate:up sqlite
CREATE TABLE games_new (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    play_time INTEGER NOT NULL CHECK (play_time > 0),          -- minutes
    min_players INTEGER NOT NULL CHECK (min_players >= 1),
    max_players INTEGER NOT NULL,
    publisher TEXT,
    year_published INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    complexity_rating INTEGER,
    last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    CHECK (max_players >= min_players)
);
INSERT INTO games_new (id, slug, name, play_time, min_players, max_players, publisher, year_published, created_at,
                       last_updated)
    SELECT id, slug, name, play_time, min_players, max_players, publisher, year_published, created_at,
           CURRENT_TIMESTAMP
    FROM games;
DROP TABLE games;
ALTER TABLE games_new RENAME TO games;

CREATE INDEX idx_games_complexity ON games (complexity_rating);
CREATE INDEX idx_games_updated ON games (last_updated);

UPDATE games SET complexity_rating = 1 WHERE play_time < 30;
UPDATE games SET complexity_rating = 2 WHERE play_time BETWEEN 30 AND 60;
UPDATE games SET complexity_rating = 3 WHERE play_time > 60;

-- migrate:down
DROP INDEX idx_games_updated;
DROP INDEX idx_games_complexity;
ALTER TABLE games DROP COLUMN last_updated;
ALTER TABLE games DROP COLUMN complexity_rating;

-- migrate:verify
SELECT COUNT(*) FROM games WHERE complexity_rating IS NULL;
