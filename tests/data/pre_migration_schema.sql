-- The SQLite schema pyegress made with create_all before migrations existed (dumped from commit 4eb0a25).
CREATE TABLE egress (
	egress_id VARCHAR(32) NOT NULL, 
	room_name VARCHAR(256) NOT NULL, 
	status INTEGER NOT NULL, 
	updated_at BIGINT NOT NULL, 
	info BLOB NOT NULL, 
	PRIMARY KEY (egress_id)
);
CREATE TABLE webhook_delivery (
	id VARCHAR(64) NOT NULL, 
	event_id VARCHAR(64) NOT NULL, 
	event VARCHAR(64) NOT NULL, 
	egress_id VARCHAR(32) NOT NULL, 
	url TEXT NOT NULL, 
	body TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at FLOAT NOT NULL, 
	delivered_at FLOAT, 
	last_error TEXT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_egress_status ON egress (status);
CREATE INDEX ix_egress_room_name ON egress (room_name);
CREATE INDEX ix_webhook_delivery_event_id ON webhook_delivery (event_id);
CREATE INDEX ix_webhook_delivery_egress_id ON webhook_delivery (egress_id);
CREATE INDEX ix_webhook_delivery_next_attempt_at ON webhook_delivery (next_attempt_at);
