-- Servers: the mesh version each agent runs, as it registered (NULL for servers registered
-- before agents reported it).
ALTER TABLE servers ADD COLUMN version TEXT;
