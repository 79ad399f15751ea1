CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"hash" text NOT NULL,
	"role" text DEFAULT 'admin' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "function_scale" (
	"function_name" text PRIMARY KEY NOT NULL,
	"min_warm" integer,
	"max_instances" integer,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "secrets" (
	"function_name" text NOT NULL,
	"key" text NOT NULL,
	"sealed" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "spans" (
	"trace_id" text NOT NULL,
	"span_id" text PRIMARY KEY NOT NULL,
	"parent_span_id" text,
	"name" text NOT NULL,
	"service" text NOT NULL,
	"start_us" bigint NOT NULL,
	"duration_us" bigint NOT NULL,
	"status_code" integer DEFAULT 0 NOT NULL,
	"status_message" text,
	"function_name" text,
	"attributes" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "function_scale" ADD CONSTRAINT "function_scale_function_name_functions_name_fk" FOREIGN KEY ("function_name") REFERENCES "public"."functions"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_hash" ON "api_keys" USING btree ("hash");--> statement-breakpoint
CREATE UNIQUE INDEX "secrets_function_key" ON "secrets" USING btree ("function_name","key");--> statement-breakpoint
CREATE INDEX "spans_trace" ON "spans" USING btree ("trace_id");--> statement-breakpoint
CREATE INDEX "spans_function_start" ON "spans" USING btree ("function_name","start_us");--> statement-breakpoint
CREATE INDEX "spans_start" ON "spans" USING btree ("start_us");