CREATE TABLE "calls" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"function_name" text NOT NULL,
	"version" integer,
	"queue" text NOT NULL,
	"job_id" text NOT NULL,
	"job_timestamp" bigint,
	"status" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"payload" jsonb NOT NULL,
	"callback_url" text,
	"http_status" integer,
	"result" jsonb,
	"error" text,
	"duration_ms" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "calls_created" ON "calls" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "calls_status_created" ON "calls" USING btree ("status","created_at");--> statement-breakpoint
CREATE INDEX "calls_function_created" ON "calls" USING btree ("function_name","created_at");