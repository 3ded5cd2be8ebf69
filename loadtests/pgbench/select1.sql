-- One round trip that does nothing: the floor.
SELECT 1;
