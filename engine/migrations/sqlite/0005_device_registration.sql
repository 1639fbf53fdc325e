-- Devices registered through the API keep the farm given there, whatever the id patterns
-- of the configuration say; 1 marks such a farm, 0 a farm taken from the patterns.
ALTER TABLE equipment ADD COLUMN farm_assigned INTEGER NOT NULL DEFAULT 0;
