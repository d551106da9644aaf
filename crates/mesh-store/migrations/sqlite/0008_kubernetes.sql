-- Racks: what runs their instances (native: runc on one server; kubernetes: an existing
-- cluster), and a Kubernetes rack's kubeconfig, sealed with the master key.
ALTER TABLE racks ADD COLUMN runtime TEXT NOT NULL DEFAULT 'native';
ALTER TABLE racks ADD COLUMN kubeconfig_sealed BLOB;
