-- Run once by the MariaDB image, when its data volume is empty, after it created the user named
-- by MARIADB_USER (docker-compose.yml: relais). Grants that user both Relais databases, which
-- need not exist yet: `relais migrate` creates them itself (utf8mb4, binary collation), so it
-- needs CREATE on them, not a global privilege. The backslash keeps `_` from being a wildcard.
-- Databases renamed in deploy/relais.compose.yaml need their grant renamed here.
GRANT ALL PRIVILEGES ON `relais\_connector`.* TO 'relais'@'%';
GRANT ALL PRIVILEGES ON `relais\_licensing`.* TO 'relais'@'%';
