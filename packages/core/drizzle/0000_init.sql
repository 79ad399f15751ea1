CREATE TABLE "functions" (
	"name" text PRIMARY KEY NOT NULL,
	"current_version" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "invocations" (
	"id" text PRIMARY KEY NOT NULL,
	"function_name" text NOT NULL,
	"version" integer NOT NULL,
	"trigger" text NOT NULL,
	"status" text NOT NULL,
	"http_status" integer,
	"cold" boolean DEFAULT false NOT NULL,
	"duration_ms" integer,
	"error" text,
	"instance_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "versions" (
	"id" serial PRIMARY KEY NOT NULL,
	"function_name" text NOT NULL,
	"version" integer NOT NULL,
	"image_ref" text NOT NULL,
	"image_digest" text NOT NULL,
	"spec" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_function_name_functions_name_fk" FOREIGN KEY ("function_name") REFERENCES "public"."functions"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "invocations_function_created" ON "invocations" USING btree ("function_name","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "versions_function_version" ON "versions" USING btree ("function_name","version");